"""The architecture as built: each executable links only the libraries the README's table
says it does (the module graph from `swift package describe`, and the binaries' link maps)."""
import json
import subprocess

import pytest

from stack import BIN_DIR, ROOT


@pytest.fixture(scope="module")
def targets():
    described = subprocess.run(["swift", "package", "describe", "--type", "json"], cwd=ROOT,
                               capture_output=True, text=True, check=True, timeout=300).stdout
    package = json.loads(described[described.index("{"):])
    return {t["name"]: t for t in package["targets"]}


def closure(targets, name):
    """Every target `name` depends on, directly or not, and every product it uses."""
    seen, products, todo = set(), set(), [name]
    while todo:
        target = targets[todo.pop()]
        products.update(target.get("product_dependencies", []))
        for dependency in target.get("target_dependencies", []):
            if dependency not in seen:
                seen.add(dependency)
                todo.append(dependency)
    return seen, products


def test_mailfcgi_links_no_smtp_and_mailworkerd_no_templates(targets):
    fcgi, _ = closure(targets, "MailFCGI")
    worker, worker_products = closure(targets, "MailWorkerd")
    assert "SMTP" not in fcgi and "CCurl" not in fcgi, sorted(fcgi)
    assert {"SMTP", "CCurl"} <= worker
    assert "Templates" not in worker and "Mustache" not in worker_products, sorted(worker)
    assert "FastCGI" in fcgi and "FastCGI" not in worker


def test_only_the_executables_parse_arguments(targets):
    users = {name for name, t in targets.items() if "ArgumentParser" in t.get("product_dependencies", [])}
    assert users == {"MailFCGI", "MailWorkerd", "MailCtl"}, users


def test_each_library_has_its_own_folder_under_sources_core(targets):
    libraries = [t for t in targets.values() if t["type"] == "library" and t["name"] not in ("CCurl", "CLinux", "CCrypto", "CPostgres")]
    assert len(libraries) >= 8
    for library in libraries:
        assert library["path"].startswith("Sources/Core/"), library


def linked(binary):
    return subprocess.run(["ldd", BIN_DIR / binary], capture_output=True, text=True, check=True).stdout


def symbols(binary):
    return subprocess.run(["nm", "-C", BIN_DIR / binary], capture_output=True, text=True, check=True).stdout


def test_the_binaries_link_what_the_graph_says():
    assert "libcurl" not in linked("mailfcgi")
    assert "libcurl" in linked("mailworkerd")
    fcgi, worker = symbols("mailfcgi"), symbols("mailworkerd")
    assert "SMTPTransport" not in fcgi and "curl_easy_perform" not in fcgi
    assert "SMTPTransport" in worker
    assert "Mustache" not in worker and "Mustache" in fcgi
