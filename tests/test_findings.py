"""One expiry judgement for doctor, check and cert list: the thresholds differ, the sentences do not."""

from __future__ import annotations

import datetime as dt

from core.diagnose import health
from core.findings import FAIL, OK, WARN, Finding, exit_code, expiry_finding, first_problem
from core.pki.certs_dir import CertListing

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)


def days(n: float) -> dt.datetime:
    return NOW + dt.timedelta(days=n)


def test_doctor_fails_only_what_has_expired_and_warns_within_its_days():
    assert expiry_finding("ca.crt", days(-1), NOW, warn_days=30) == Finding(FAIL, "expiry", "ca.crt expired on 2029-12-31.")
    assert expiry_finding("ca.crt", days(10.5), NOW, warn_days=30) == Finding(
        WARN, "expiry", "ca.crt expires on 2030-01-11, in 10 days.")
    assert expiry_finding("ca.crt", days(40), NOW, warn_days=30) == Finding(
        OK, "expiry", "ca.crt is valid until 2030-02-10 (40 days).")


def test_check_also_calls_critical_what_expires_within_its_critical_days():
    assert health.expiry_problem("node.crt", days(40), NOW, 30, 7) is None
    warning = health.expiry_problem("node.crt", days(20), NOW, 30, 7)
    critical = health.expiry_problem("node.crt", days(3), NOW, 30, 7)
    assert health.line(warning) == "WARNING: node.crt expires on 2030-01-21, in 20 days."
    assert health.line(critical) == "CRITICAL: node.crt expires on 2030-01-04, in 3 days."
    assert exit_code([warning]) == 1 and exit_code([warning, critical]) == 2 and exit_code([]) == 0


def test_cert_list_flags_what_doctor_warns_about():
    def flag(expires: dt.datetime) -> str:
        return CertListing("Node", "node.crt", "node.key", expires, "", "").expiry_flag(NOW, 30)

    assert flag(days(-1)) == "EXPIRED"
    assert flag(days(12.5)) == "expires in 12 days"
    assert flag(days(31)) == ""


def test_the_first_problem_is_the_first_failure_not_a_warning():
    findings = [Finding(OK, "pem", "fine"), Finding(WARN, "expiry", "soon"), Finding(FAIL, "san", "not covered")]
    assert first_problem(findings) == "not covered" and first_problem(findings[:2]) is None
