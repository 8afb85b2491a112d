"""Run in a fresh interpreter by the behaviour harness:

    python harness_runner.py APP_DIR TARGET < requests.json

TARGET is "module:attr" or "module:factory(args)" (as `flask --app` takes it). Each
request is {"method", "path", optional "json", "data", "headers", "query_string"}. The last
line printed is a JSON list with, per request: status, content type, body, the headers
clients act on, and the names of cookies set. An exception escaping the app is recorded
as {"exception": "Type: message"} rather than a response.
"""

import ast
import importlib
import json
import sys

KEY_HEADERS = ("Location", "Allow", "WWW-Authenticate", "Content-Type", "Cache-Control", "Retry-After")


def load_app(target: str):
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    attr = attr or "app"
    if "(" in attr:
        name, _, rest = attr.partition("(")
        call = ast.parse(f"f({rest}", mode="eval").body
        args = [ast.literal_eval(a) for a in call.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        return getattr(module, name)(*args, **kwargs)
    return getattr(module, attr)


def main() -> None:
    app_dir, target = sys.argv[1], sys.argv[2]
    sys.path.insert(0, app_dir)
    app = load_app(target)
    requests = json.loads(sys.stdin.read() or "[]")
    app.testing = False  # let error handlers render as in production
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client()
    out = []
    for spec in requests:
        try:
            response = client.open(
                spec["path"], method=spec.get("method", "GET"), json=spec.get("json"),
                data=spec.get("data"), headers=spec.get("headers"), query_string=spec.get("query_string"),
            )
        except Exception as exc:  # noqa: BLE001 - recorded for comparison
            out.append({"exception": f"{type(exc).__name__}: {exc}"})
            continue
        out.append({
            "status": response.status_code,
            "content_type": response.content_type,
            "body": response.get_data(as_text=True),
            "headers": {h: response.headers.get(h) for h in KEY_HEADERS if h in response.headers},
            "cookies": sorted(c.split("=", 1)[0] for c in response.headers.getlist("Set-Cookie")),
        })
    print(json.dumps(out))


if __name__ == "__main__":
    main()
