"""The webhook in the portal: subscribing an application to a push plan with its webhook
settings, the subscription's page (state, last deliveries, retry now / resume, settings)."""

import re

import requests

from support.gatehouse import ADMIN_PASSWORD
from support.portal import csrf_token
from support.webhook import ALLOW_PRIVATE, PUSH_PLAN, Receiver, mock_group, wait_state, webhook_api


def login(server):
    browser = requests.Session()
    token = csrf_token(browser.get(server.portal + "/login").text)
    response = browser.post(
        server.portal + "/login",
        allow_redirects=False,
        data={"csrf_token": token, "username": "admin", "password": ADMIN_PASSWORD},
    )
    assert response.status_code == 302, response.text
    return browser


def post_form(browser, server, path, data=None):
    token = csrf_token(browser.get(server.portal + "/login").text)
    return browser.post(server.portal + path, data={"csrf_token": token, **(data or {})}, allow_redirects=False)


def test_subscribe_from_the_portal_then_see_deliveries_and_resume_a_failed_subscription(start_server):
    answers = {"status": 500}
    target = Receiver(lambda n, body, headers: answers["status"])
    server = start_server(**ALLOW_PRIVATE)
    try:
        api_id = server.deploy_api(webhook_api([mock_group(2, interval=20)], qos="at-least-once"))
        application = server.application()
        browser = login(server)
        base = f"/applications/{application['id']}"

        refused = post_form(
            browser,
            server,
            base + "/subscriptions",
            {"plan": f"{api_id}/{PUSH_PLAN['id']}", "webhook.callbackUrl": "nowhere"},
        )
        assert refused.status_code == 400 and "is not an http:// or https:// URL" in refused.text

        fields = post_form(browser, server, base + "/webhook/_fields", {"webhook.auth.type": "basic"})
        assert 'name="webhook.auth.basic.username"' in fields.text

        response = post_form(
            browser,
            server,
            base + "/subscriptions",
            {
                "plan": f"{api_id}/{PUSH_PLAN['id']}",
                "webhook.callbackUrl": target.url + "/hook",
                "webhook.retry.retryOption": "Retry On Fail",
                "webhook.retry.retryStrategy": "LINEAR",
                "webhook.retry.maxAttempts": "2",
                "webhook.retry.initialDelaySeconds": "0.05",
                "webhook.retry.maxDelaySeconds": "0.05",
            },
        )
        assert response.status_code == 200, response.text
        page = browser.get(server.portal + base).text
        [subscription_id] = re.findall(r"/subscriptions/([0-9a-f-]+)/webhook", page)
        wait_state(server, api_id, subscription_id, "failed")

        webhook_page = f"{server.portal}{base}/subscriptions/{subscription_id}/webhook"
        page = browser.get(webhook_page).text
        assert "state-failed" in page and "Message 0 not delivered after 2 attempts: HTTP 500" in page
        assert page.count('class="outcome-failed"') == 2 and "Resume" in page

        answers["status"] = 200
        resumed = post_form(browser, server, f"{base}/subscriptions/{subscription_id}/webhook/resume")
        assert resumed.status_code == 302
        target.wait(lambda calls: len(target.accepted()) == 2)
        wait_state(server, api_id, subscription_id, "active", lambda s: s["deliveries"][0]["outcome"] == "delivered")
        page = browser.get(webhook_page).text
        assert "state-active" in page and 'class="outcome-delivered"' in page

        saved = post_form(
            browser,
            server,
            f"{base}/subscriptions/{subscription_id}/webhook",
            {"webhook.callbackUrl": target.url + "/other", "webhook.retry.retryOption": "No Retry"},
        )
        assert saved.status_code == 302, saved.text
        again = post_form(browser, server, f"{base}/subscriptions/{subscription_id}/webhook/retry")
        assert again.status_code == 302  # refused (it is not retrying), said in a flash
        assert "Only a retrying subscription can be retried now" in browser.get(webhook_page).text
    finally:
        target.close()
