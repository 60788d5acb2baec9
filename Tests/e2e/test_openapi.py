"""The API description, the offline Swagger UI, and the production nginx example."""
import re
import shutil
import subprocess

import requests
from openapi_spec_validator import validate

from stack import ROOT


def test_openapi_document_is_valid_3_1_and_lists_every_route(stack):
    response = stack.request("GET", "/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) == {"/", "/email", "/emails/batch", "/email/{request_id}", "/status", "/health", "/metrics", "/suppressions", "/suppressions/{address}", "/templates", "/workers/status",
                                  "/process-batch", "/openapi.json"}


def test_the_document_marks_as_open_what_is_open(stack):
    spec = stack.request("GET", "/openapi.json").json()
    assert spec["paths"]["/openapi.json"]["get"]["security"] == []
    assert "401" not in spec["paths"]["/openapi.json"]["get"]["responses"]
    assert stack.request("GET", "/openapi.json", auth=False).status_code == 200
    assert stack.request("GET", "/docs/", auth=False).status_code == 200
    assert "/docs/" in spec["info"]["description"] and "without credentials" in spec["info"]["description"]


def test_docs_are_served_locally_with_no_outside_reference(stack):
    index = stack.request("GET", "/docs/")
    assert index.status_code == 200 and "swagger-ui" in index.text
    assert not re.search(r"https?://", index.text), "the page must load nothing from the internet"
    for asset in re.findall(r'(?:src|href)="\./?([^"]+)"', index.text):
        fetched = stack.request("GET", "/docs/" + asset)
        assert fetched.status_code == 200, asset
    initializer = stack.request("GET", "/docs/swagger-initializer.js").text
    assert '"/openapi.json"' in initializer
    assert stack.request("GET", "/docs", allow_redirects=False).status_code == 301


def test_production_nginx_example_passes_nginx_t(tmp_path):
    conf = (ROOT / "deploy" / "nginx" / "production.conf").read_text()
    (tmp_path / "tls").mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=t",
                    "-keyout", tmp_path / "tls" / "privkey.pem", "-out", tmp_path / "tls" / "fullchain.pem"],
                   check=True, capture_output=True)
    (tmp_path / "htpasswd").write_text("demo:$apr1$x$y\n")
    shutil.copy(ROOT / "deploy" / "nginx" / "fastcgi-mail.conf", tmp_path / "fastcgi-mail.conf")
    conf = (conf.replace("/etc/ssl/mail-api/", f"{tmp_path}/tls/")
                .replace("/etc/nginx/mail-api.htpasswd", f"{tmp_path}/htpasswd")
                .replace("/usr/share/mail-dispatch/nginx/", f"{tmp_path}/")
                .replace("/run/mail-dispatch/", f"{tmp_path}/")
                .replace("listen 443 ssl;", "listen 127.0.0.1:1443 ssl;")
                .replace("listen [::]:443 ssl;", ""))
    main = (f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
            f"http {{\n{conf}\n}}\n")
    (tmp_path / "nginx.conf").write_text(main)
    result = subprocess.run(["nginx", "-t", "-c", tmp_path / "nginx.conf", "-e", tmp_path / "error.log"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # The example keeps its promises.
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in conf and "Strict-Transport-Security" in conf
    assert "client_max_body_size 15m;" in conf and "limit_req" in conf
    assert "limit_req_zone $remote_user" in conf and "add_header Retry-After" in conf


def test_schemathesis_finds_no_server_error_and_no_answer_off_the_schema(stack):
    result = subprocess.run(
        [ROOT / ".venv" / "bin" / "schemathesis", "run", stack.url("/openapi.json"),
         "--auth", f"demo:{stack.password}", "--tls-verify", stack.cert,
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                     "response_schema_conformance,response_headers_conformance",
         "--max-examples", "40", "--seed", "1", "--no-color"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]
    generated = re.search(r"(\d+) generated", result.stdout)
    assert generated and int(generated.group(1)) >= 50, result.stdout[-2000:]  # it really ran


def rendered_offline(url):
    """The DOM headless Chromium renders for `url` with every host but this one unresolvable:
    a page that needs anything from outside shows nothing."""
    result = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--ignore-certificate-errors",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--virtual-time-budget=15000",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_headless_chromium_shows_the_email_operation_with_no_network(stack):
    dom = rendered_offline(stack.url("/docs/"))
    assert 'data-path="/email"' in dom, dom[-2000:]


def test_redoc_is_served_locally_and_renders_the_api_with_no_network(stack):
    page = stack.request("GET", "/redoc", auth=False)  # open, like /docs
    assert page.status_code == 200 and "<redoc" in page.text and 'spec-url="/openapi.json"' in page.text
    assert not re.search(r"https?://", page.text), "the page must load nothing from the internet"
    bundle = stack.request("GET", "/redoc/redoc.standalone.js", auth=False)
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    assert "javascript" in bundle.headers["Content-Type"]
    dom = rendered_offline(stack.url("/redoc"))
    assert "send_email_email_post" in dom or "Queue an email" in dom, dom[-2000:]
