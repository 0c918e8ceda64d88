"""PyTorch's side of bench/trainer.sh: training steps per second on one thread
for the same shapes, batch sizes, optimiser (Adam) and loss as the built-in
trainer's `train_speed` example. Prints one JSON line per shape."""
import json
import sys
import time

import torch
from torch import nn

torch.set_num_threads(1)
torch.manual_seed(0)
REPEATS = int(sys.argv[1]) if len(sys.argv) > 1 else 3


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 10))


SHAPES = [
    ("mlp 64-64-10 batch 32", lambda: nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)), (64,), 32, 2000),
    ("mlp 784-128-10 batch 64", lambda: nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10)), (784,), 64, 400),
    ("cnn 28x28 conv8-conv16 batch 64", cnn, (1, 28, 28), 64, 60),
]

for label, make, shape, batch, steps in SHAPES:
    x = torch.rand((batch * steps,) + shape)
    y = torch.randint(0, 10, (batch * steps,))
    rates = []
    for _ in range(REPEATS):
        model = make()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        order = torch.randperm(batch * steps)
        start = time.perf_counter()
        for s in range(steps):
            idx = order[s * batch:(s + 1) * batch]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            loss.item()
        rates.append(steps / (time.perf_counter() - start))
    rates.sort()
    print(json.dumps({"shape": label, "steps_per_s": rates[len(rates) // 2], "steps": steps}))
