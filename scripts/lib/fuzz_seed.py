#!/usr/bin/env python3
"""Seeds two shops for scripts/fuzz and prints the first owner's access token.

The first shop is the one the fuzzer signs in as; it gets a category, a product, a customer
and an order, so that operations on ids have something to find. The second shop gets the
same, so that ids of another tenant exist (and must answer 404 to the first).

  fuzz_seed.py BASE_URL
"""

import json
import sys
import urllib.request
import uuid


def call(base, method, path, body=None, token=None, headers=None):
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    if token:
        request.add_header("authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
        return json.loads(text) if text else None


def shop(base, name):
    tag = uuid.uuid4().hex[:10]
    slug, email, password = f"fuzz-{tag}", f"owner.{tag}@example.id", f"kata-sandi-{tag}"
    call(base, "POST", "/api/v1/onboarding/merchants", {
        "business_name": name, "slug": slug, "locale": "id", "country": "ID",
        "owner": {"full_name": "Sari Dewi", "email": email, "phone": "+628123450000",
                  "password": password},
        "consents": [{"purpose": "account", "granted": True}],
    })
    token = call(base, "POST", "/api/v1/auth/login",
                 {"tenant": slug, "email": email, "password": password})["access_token"]
    category = call(base, "POST", "/api/v1/categories", {"name": "Minuman"}, token)
    product = call(base, "POST", "/api/v1/products", {
        "name": "Kopi Susu", "sku": f"KS-{tag}", "price_minor": 18000, "currency": "IDR",
        "stock": 1000, "category_id": category["id"],
    }, token)
    customer = call(base, "POST", "/api/v1/customers", {
        "full_name": "Ani Wijaya", "email": f"ani.{tag}@example.id", "phone": "+62 811-2233-4455",
        "locale": "id", "consents": [{"purpose": "orders", "granted": True}],
    }, token)
    call(base, "POST", "/api/v1/orders", {
        "lines": [{"product_id": product["id"], "quantity": 1}], "customer_id": customer["id"],
    }, token, {"idempotency-key": str(uuid.uuid4())})
    return token


def main():
    base = sys.argv[1].rstrip("/")
    token = shop(base, "Toko Fuzz")
    shop(base, "Toko Tetangga")
    print(token)


if __name__ == "__main__":
    main()
