"""Short crash soak for CI (the long one is `tests/soak.py --kills 100`, by
hand): SMTP load on port 25 from four threads, the daemon SIGKILLed at random
moments and restarted; every message answered 250 must be in each recipient's
INBOX exactly once, nothing may arrive twice or unasked, and `posthorn verify`
must find the quota and reference counters exact. Messages to a forwarder go
through the outbound queue to a sink: each acknowledged one must get there."""

import json

from soak import soak


def test_crash_soak_short(tmp_path):
    figures = soak(tmp_path, kills=8, threads=4, min_up=0.3, max_up=1.5)
    print("\n" + json.dumps(figures))
    assert figures["kills"] == 8
    assert figures["acknowledged"] > 50, figures
    assert figures["lost"] == 0, figures
    assert figures["duplicated"] == 0, figures
    assert figures["unexpected"] == 0, figures
    assert figures["verify_ok"], figures
    assert figures["forwarded_acknowledged"] > 5, figures
    assert figures["outbound_lost"] == 0, figures
    assert figures["outbound_unexpected"] == 0, figures
    assert figures["queue_left"] == 0, figures
