"""The owner's notifications of requests waiting for approval: a signed webhook
(`agent.control.webhook`) and email (`agent.notify.email`), sent together by
`agent.notify.fanout.Notifiers`; the payload and its signature in `agent.notify.message`."""
