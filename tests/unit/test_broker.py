import ssl

from gemini_tasks.broker import ssl_options


def test_plain_redis_has_no_tls():
    assert ssl_options("redis://localhost:6379/0") is None


def test_rediss_verifies_certificates_by_default():
    assert ssl_options("rediss://:pw@host:6380/0") == {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def test_rediss_options_come_from_the_url():
    options = ssl_options(
        "rediss://:pw@host:6380/0?ssl_cert_reqs=CERT_OPTIONAL&ssl_ca_certs=/etc/ca.pem"
    )
    assert options == {"ssl_cert_reqs": ssl.CERT_OPTIONAL, "ssl_ca_certs": "/etc/ca.pem"}
