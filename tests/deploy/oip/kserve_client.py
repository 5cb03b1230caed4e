"""Run by the KServe SDK's own environment (not the hub's): KServe's InferenceRESTClient (v2)
against a gateway URL. Prints one JSON document of what the client got back; the test reads
it. Arguments: base URL, model name, the JSON rows (records) to send."""

import asyncio
import json
import sys

from kserve import InferenceRESTClient, RESTConfig
from kserve.protocol.infer_type import InferInput, InferRequest

DATATYPE = {bool: "BOOL", int: "INT64", float: "FP64", str: "BYTES"}


async def main(url: str, model: str, rows: list[dict]) -> dict:
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
    try:
        per_column = InferRequest(
            model_name=model,
            infer_inputs=[
                InferInput(
                    name=column,
                    shape=[len(rows)],
                    datatype=DATATYPE[type(rows[0][column])],
                    data=[r[column] for r in rows],
                )
                for column in rows[0]
            ],
            parameters={"content_type": "pd"},
            request_id="kserve-client-1",
        )
        headers: dict[str, str] = {}
        answer = await client.infer(url, per_column, model_name=model, response_headers=headers)
        columns = list(rows[0])
        tensor = InferRequest(
            model_name=model,
            infer_inputs=[
                InferInput(
                    name="features",
                    shape=[len(rows), len(columns)],
                    datatype="FP64",
                    data=[float(r[c]) for r in rows for c in columns],
                )
            ],
        )
        as_tensor = await client.infer(url, tensor, model_name=model)
        bad = InferRequest(
            model_name=model,
            infer_inputs=[InferInput(name=columns[0], shape=[1], datatype="FP64", data=[1.0])],
        )
        try:
            await client.infer(url, bad, model_name=model)
            refused = None
        except Exception as exc:  # httpx.HTTPStatusError carrying the server's {"error"}
            refused = str(exc)
        output = answer.outputs[0]
        return {
            "live": await client.is_server_live(url),
            "ready": await client.is_server_ready(url),
            "model_ready": await client.is_model_ready(url, model),
            "missing_model_ready": await client.is_model_ready(url, "no-such-model"),
            "model_name": answer.model_name,
            "version_header": headers.get("x-slipway-version"),
            "id": answer.id,
            "output": {
                "name": output.name,
                "datatype": output.datatype,
                "shape": list(output.shape),
                "data": output.as_numpy().tolist(),
            },
            "tensor_data": as_tensor.outputs[0].as_numpy().tolist(),
            "refused": refused,
        }
    finally:
        await client.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))))
