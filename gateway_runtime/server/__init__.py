"""The gateway port's own HTTP/1.1 server (`gatehouse serve`): a WSGI server without pywsgi, its
request heads checked by framing.py and its chunked bodies decoded by llhttp (httptools)."""
