"""Policies: one module each, declaring its settings and phases once as `SPEC` (a PolicySpec).

A policy object is made once per deployment from its step's configuration; its `on_request` /
`on_response` take the Exchange, its `on_message` the Exchange and a MessageView (returning False
drops the message). A policy ends a request by raising messages.Interrupted.
"""
