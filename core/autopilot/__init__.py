"""Autopilot: the months-long schedule of a rotation runs itself, inside maintenance windows.

policy (the hand-written [autopilot] table), windows (cron expressions, UTC), observe (what every
certificate's expiry is), decide (pure: what is due now), notify (webhook, command, apprise; one
message per event), pilot (one pass: start what is due, advance what is ready), metrics
(`check --format prometheus|json`) and install (systemd units, crontab line).
"""
