#!/usr/bin/env bash
# Checks templates/cloudformation/tenant.yaml and charts/tenant:
#   - cfn-lint on the template, and the contract tenantctl reads (parameters, outputs, tags);
#   - the chart rendered by Helm's own engine (helm-python-sdk) for every tier with
#     charts/tenant/ci/<tier>-values.yaml, every expected kind present, every manifest
#     validated against the Kubernetes schemas (kubernetes-validate, strict);
#   - values that break values.schema.json are rejected by the render.
# Ends with "N passed, M failed"; exits non-zero on any failure.
#
# Python: ${TENANT_ORCHESTRATOR_PYTHON:-python3}, with the packages pinned in
# localstack/requirements.txt (cfn-lint, helm-python-sdk, kubernetes-validate).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${TENANT_ORCHESTRATOR_PYTHON:-python3}"

if ! "$python" -c 'import cfnlint, helm_python, kubernetes_validate, yaml' 2>/dev/null; then
    echo "check-templates: $python lacks cfn-lint, helm-python-sdk or kubernetes-validate;" >&2
    echo "  install localstack/requirements.txt into it, or set TENANT_ORCHESTRATOR_PYTHON" >&2
    echo "0 passed, 1 failed"
    exit 2
fi

exec "$python" "$root/scripts/check_templates.py" "$@"
