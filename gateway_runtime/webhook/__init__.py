"""Webhook delivery: one loop per accepted push-plan subscription, run by exactly one gateway process.

caller: calls one subscription's callback (its pool, headers, credentials, the check that the
callback is public). delivery: the loop of one subscription (retries, dead letters, acks).
leases: which process runs which loop (lease rows in the database), and the attempts and states
written for the portal.
"""
