#!/usr/bin/env bash
# Renders every kustomization and checks the output.
#   needs: kubectl (built-in kustomize), yamllint, kubernetes-validate
#          (pip install --target /tmp/kv kubernetes-validate yamllint; PYTHONPATH=/tmp/kv PATH=/tmp/kv/bin:$PATH)
#   optional: BIN=target/debug/warung runs `warung config check` with each workload's env and
#             placeholder secret files, which catches unknown or invalid WARUNG_* settings.
set -euo pipefail
cd "$(dirname "$0")"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
yamllint -c .yamllint .
for k in base overlays/local overlays/production; do
  f=$out/${k//\//-}.yaml
  kubectl kustomize "$k" > "$f"
  yamllint -c .yamllint "$f"
  kubernetes-validate --strict --quiet -k 1.30.0 "$f"
  kubernetes-validate --strict --quiet "$f"
  echo "ok: $k"
done
[[ -n ${BIN:-} ]] || exit 0
for k in overlays-local overlays-production; do
  python3 - "$out/$k.yaml" "$BIN" <<'PY'
import os, subprocess, sys, tempfile, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
data = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
fake = {"database-app-url": "postgres://app:x@postgres/warung", "database-system-url": "postgres://sys:x@postgres/warung",
        "database-migrate-url": "postgres://owner:x@postgres/warung", "redis-url": "redis://redis:6379",
        "vault-token": "s.placeholder", "smtp-password": "placeholder"}
for d in docs:
    if d["kind"] not in ("Deployment", "Job"):
        continue
    pod = d["spec"]["template"]["spec"]
    tmp = tempfile.mkdtemp()
    for item in pod["volumes"][0]["secret"]["items"]:
        with open(os.path.join(tmp, item["path"]), "w") as fh:
            fh.write(fake[item["key"]] + "\n")
    env = {"PATH": os.environ["PATH"], **data}
    env.update({e["name"]: e["value"].replace("/var/run/secrets/warung", tmp) for e in pod["containers"][0]["env"]})
    subprocess.run([sys.argv[2], "config", "check"], env=env, check=True, stdout=subprocess.DEVNULL)
    print(f"config ok: {sys.argv[1].rsplit('/', 1)[-1]} {d['kind']}/{d['metadata']['name']}")
PY
done
