"""The peer: LitServe serving the same predictor (same tokenisation, same forward pass) with its own dynamic
batching. `python -m bench.peer_litserve MODEL_DIR MODEL PORT MAX_BATCH` (needs the `bench` extra).

No `from __future__ import annotations` here: LitServe reads decode_request's annotation at run time."""


import sys
from pathlib import Path
from typing import Any

import litserve as ls

from bench.raw import load


class SamePredictorAPI(ls.LitAPI):  # type: ignore[misc]
    def __init__(self, model_dir: Path, model: str) -> None:
        super().__init__()
        self._model_dir, self._model = model_dir, model

    def setup(self, device: str) -> None:
        self.predictor = load(self._model_dir, self._model, "cpu")
        for batch in self.predictor.warmup_batches(8):
            self.predictor.predict(batch)

    def decode_request(self, request: dict[str, Any]) -> Any:
        return self.predictor.prepare(str(request["text"]).encode(), None)

    def batch(self, inputs: list[Any]) -> list[Any]:
        return list(inputs)

    def predict(self, x: list[Any]) -> list[list[float]]:
        return self.predictor.predict(x)

    def unbatch(self, output: list[list[float]]) -> list[list[float]]:
        return list(output)

    def encode_response(self, output: list[float]) -> dict[str, Any]:
        return {"probabilities": output}


def main() -> None:
    model_dir, model, port, max_batch = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    server = ls.LitServer(SamePredictorAPI(model_dir, model), accelerator="cpu", max_batch_size=max_batch,
                          batch_timeout=0.005, workers_per_device=1)
    server.run(host="127.0.0.1", port=port, num_api_servers=1, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
