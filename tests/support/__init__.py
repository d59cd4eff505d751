"""What the tests share: servers, brokers, certificates, portal and browser helpers, API definitions.
Test modules import from here, never from each other; conftest.py holds the fixtures."""
