"""The parts of solace-pubsubplus that the Solace worker uses, in one namespace.

The worker imports this module by name (GATEHOUSE_SOLACE_API), so that a test can name a stand-in
with the same surface (tests/solace_double.py) and run the real worker without a broker.
Imported only by the worker process: the library does not work in a gevent-patched one.
"""

from solace.messaging.config.missing_resources_creation_configuration import MissingResourcesCreationStrategy
from solace.messaging.config.retry_strategy import RetryStrategy
from solace.messaging.config.solace_properties.authentication_properties import SCHEME_BASIC_PASSWORD as PASSWORD
from solace.messaging.config.solace_properties.authentication_properties import SCHEME_BASIC_USER_NAME as USERNAME
from solace.messaging.config.solace_properties.message_properties import PERSISTENT_TIME_TO_LIVE
from solace.messaging.config.solace_properties.service_properties import (
    GENERATE_SEND_TIMESTAMPS,
    GENERATE_SENDER_ID,
    VPN_NAME,
)
from solace.messaging.config.solace_properties.transport_layer_properties import CONNECTION_ATTEMPTS_TIMEOUT, HOST
from solace.messaging.config.sub_code import SolClientSubCode
from solace.messaging.config.transport_security_strategy import TLS
from solace.messaging.errors.pubsubplus_client_error import PubSubPlusClientError
from solace.messaging.messaging_service import MessagingService, ServiceInterruptionListener
from solace.messaging.receiver.inbound_message import CacheStatus
from solace.messaging.receiver.message_receiver import MessageHandler
from solace.messaging.resources.queue import Queue
from solace.messaging.resources.topic import Topic
from solace.messaging.resources.topic_subscription import TopicSubscription

__all__ = [
    "CONNECTION_ATTEMPTS_TIMEOUT",
    "GENERATE_SENDER_ID",
    "GENERATE_SEND_TIMESTAMPS",
    "HOST",
    "PASSWORD",
    "PERSISTENT_TIME_TO_LIVE",
    "USERNAME",
    "VPN_NAME",
    "CacheStatus",
    "MessageHandler",
    "MessagingService",
    "MissingResourcesCreationStrategy",
    "PubSubPlusClientError",
    "Queue",
    "RetryStrategy",
    "ServiceInterruptionListener",
    "SolClientSubCode",
    "TLS",
    "Topic",
    "TopicSubscription",
]
