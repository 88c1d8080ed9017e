"""Prints the write units DynamoDB Local reports for the shapes of write the store
makes, so the write-unit figures in docs/BENCHMARKS.md can be read against what the
simulator counts (it does not count as DynamoDB's published pricing does).

Run with the local AWS started (`eval "$(localstack/start.sh)"`), with the Python
of the local AWS install, which has boto3:

    ~/.cache/tenant-orchestrator/localstack/venv/bin/python scripts/dynamodb-local-units.py

It makes a throwaway table with one index (keys `lp`/`ls`, projecting `proj`),
prints one line per probe (table units, index units) and deletes the table.
"""

from __future__ import annotations

import os
import uuid

import boto3


def main() -> None:
    port = os.environ.get("DYNAMODB_PORT", "28000")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{port}")
    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    table = "units-probe-" + uuid.uuid4().hex[:8]
    client.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": a, "AttributeType": "S"} for a in ["pk", "sk", "lp", "ls"]
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "probe",
                "KeySchema": [
                    {"AttributeName": "lp", "KeyType": "HASH"},
                    {"AttributeName": "ls", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["proj"]},
            }
        ],
    )

    def put(pk: str, **attrs: str) -> dict:
        item = {"pk": {"S": pk}, "sk": {"S": "1"}}
        item.update({k: {"S": v} for k, v in attrs.items()})
        return {"Put": {"TableName": table, "Item": item}}

    def update(pk: str, expression: str, **values: str) -> dict:
        change = {
            "TableName": table,
            "Key": {"pk": {"S": pk}, "sk": {"S": "1"}},
            "UpdateExpression": expression,
        }
        if values:
            change["ExpressionAttributeValues"] = {f":{k}": {"S": v} for k, v in values.items()}
        return {"Update": change}

    def check(pk: str) -> dict:
        return {
            "ConditionCheck": {
                "TableName": table,
                "Key": {"pk": {"S": pk}, "sk": {"S": "1"}},
                "ConditionExpression": "attribute_exists(pk)",
            }
        }

    def probe(label: str, items: list[dict]) -> None:
        out = client.transact_write_items(TransactItems=items, ReturnConsumedCapacity="INDEXES")
        used = out["ConsumedCapacity"][0]
        index = used.get("GlobalSecondaryIndexes", {}).get("probe", {}).get("CapacityUnits", 0.0)
        print(f"{label:<62} table {used['Table']['CapacityUnits']:>5.1f}  index {index:>5.1f}")

    client.put_item(TableName=table, Item={"pk": {"S": "big"}, "sk": {"S": "1"}, "d": {"S": "x" * 50_000}})
    probe("transaction, 1 small put", [put("a")])
    probe("transaction, 3 small puts", [put("b"), put("c"), put("d")])
    probe("transaction, 1 put of 1.1 KB", [put("e", d="x" * 1100)])
    probe("transaction, 1 small put of an item in the index", [put("f", lp="x", ls="f", proj="p")])
    probe(
        "transaction, that put and 2 small puts",
        [put("g", lp="x", ls="g", proj="p"), put("h"), put("i")],
    )
    probe("transaction, update of an indexed item, unprojected attribute", [update("f", "SET other_attr = :v", v="1")])
    probe("transaction, update setting the projected values they hold", [update("f", "SET lp = :a, ls = :b, proj = :c", a="x", b="f", c="p")])
    probe("transaction, update changing a projected attribute", [update("f", "SET proj = :v", v="p2")])
    probe("transaction, update moving the index key", [update("f", "SET ls = :v", v="f2")])
    probe("transaction, update removing the index key", [update("f", "REMOVE ls")])
    probe("transaction, small put and condition check on a 50 KB item", [put("j"), check("big")])
    probe("transaction, small put and condition check on a small item", [put("k"), check("a")])
    client.delete_table(TableName=table)


if __name__ == "__main__":
    main()
