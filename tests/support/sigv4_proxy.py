"""A SigV4-verifying proxy for the AWS tests: it checks every request's signature with
botocore's own signer (an implementation we did not write) and forwards only requests that
verify, as AWS would, to a loopback upstream (MiniStack, which checks no signature).

A request is refused (403, as AWS answers) when its Authorization header is missing or
malformed, when it signs a header it does not send, or when botocore computes another
signature over what was actually received. A CreateJob request (PUT /jobs/ID) is also
checked against botocore's model of the IoT API, AWS's own description of the request
(types, required members, lengths and ranges), and refused (400) when it does not fit; the
scheduling configurations of the jobs it let through are listed in the stats.

Usage: python sigv4_proxy.py UPSTREAM_URL   (credentials from AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY; prints "listening on http://127.0.0.1:PORT", serves until killed)
"""

import http.client
import json
import os
import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.session import get_session
from botocore.validate import ParamValidator

AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[^,]+), ?Signature=(?P<sig>[0-9a-f]{64})$"
)

UPSTREAM = urllib.parse.urlsplit(sys.argv[1])
CREDS = Credentials(
    os.environ["AWS_ACCESS_KEY_ID"],
    os.environ["AWS_SECRET_ACCESS_KEY"],
    os.environ.get("AWS_SESSION_TOKEN") or None,
)
STATS = {"verified": 0, "rejected": 0, "reasons": {}, "invalid": [], "scheduling": []}
LOCK = threading.Lock()
CREATE_JOB = get_session().get_service_model("iot").operation_model("CreateJob").input_shape
JOB_PATH = re.compile(r"^/jobs/(?P<id>[^/?]+)$")


def invalid_create_job(method, path, body):
    """None unless this is a CreateJob request that botocore's model rejects, then why."""
    m = JOB_PATH.match(urllib.parse.urlsplit(path).path)
    if method != "PUT" or not m:
        return None
    try:
        params = json.loads(body or b"{}")
    except ValueError as e:
        return f"body is not JSON: {e}"
    params["jobId"] = urllib.parse.unquote(m["id"])
    report = ParamValidator().validate(params, CREATE_JOB)
    if report.has_errors():
        return report.generate_report()
    with LOCK:
        STATS["scheduling"].append({
            "jobId": params["jobId"],
            "targets": [t.rsplit("/", 1)[-1] for t in params.get("targets", [])],
            "schedulingConfig": params.get("schedulingConfig"),
        })
    return None


def verify(method, path, headers, body):
    """None if the request verifies, else why not."""
    auth = headers.get("authorization")
    if not auth:
        return "no Authorization header"
    m = AUTH.match(auth)
    if not m:
        return "malformed Authorization header"
    if m["akid"] != CREDS.access_key:
        return "unknown access key"
    signed = m["signed"].split(";")
    missing = [h for h in signed if h not in headers]
    if missing:
        return "signs headers it does not send: " + ",".join(missing)
    amz_date = headers.get("x-amz-date")
    if not amz_date or not amz_date.startswith(m["date"]):
        return "x-amz-date missing or not the credential's date"
    request = AWSRequest(
        method=method,
        url=f"http://{headers['host']}{path}",
        data=body,
        headers={h: headers[h] for h in signed},
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(CREDS, m["service"], m["region"])
    # botocore signs every header it is given that it does not blacklist: give it exactly the
    # signed ones, and check that it would have signed the same list.
    if signer.signed_headers(signer.headers_to_sign(request)) != m["signed"]:
        return "signed-header list differs from botocore's"
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if expected != m["sig"]:
        return "signature does not verify"
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/_sigv4/stats":
            with LOCK:
                self.reply(200, json.dumps(STATS).encode(), {"content-type": "application/json"})
            return
        headers = {k.lower(): v.strip() for k, v in self.headers.items()}
        why = verify(self.command, self.path, headers, body)
        with LOCK:
            if why:
                STATS["rejected"] += 1
                STATS["reasons"][why] = STATS["reasons"].get(why, 0) + 1
            else:
                STATS["verified"] += 1
        if why:
            payload = json.dumps({"__type": "InvalidSignatureException", "message": why}).encode()
            self.reply(403, payload, {"content-type": "application/json",
                                      "x-amzn-ErrorType": "InvalidSignatureException"})
            return
        invalid = invalid_create_job(self.command, self.path, body)
        if invalid:
            with LOCK:
                STATS["invalid"].append(invalid)
            payload = json.dumps({"__type": "InvalidRequestException", "message": invalid}).encode()
            self.reply(400, payload, {"content-type": "application/json",
                                      "x-amzn-ErrorType": "InvalidRequestException"})
            return
        conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=60)
        forward = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("connection", "content-length", "transfer-encoding")}
        conn.request(self.command, self.path, body=body or None, headers=forward)
        resp = conn.getresponse()
        data = resp.read()
        keep = {k: v for k, v in resp.getheaders()
                if k.lower() not in ("connection", "content-length", "transfer-encoding")}
        conn.close()
        self.reply(resp.status, data, keep)

    def reply(self, code, data, headers):
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = handle_any


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
