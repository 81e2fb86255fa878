"""The 32-feature logistic regression of issue 11's measurements, in the form sklearn-onnx exports
(ai.onnx.ml LinearClassifier, zipmap off: float_input [None,32] -> label, probabilities [None,2]),
with seeded coefficients. Same helpers as the test fixtures (Debian's python3-onnx).

  /usr/bin/python3 bench/baselines/make-lr32-model.py /tmp/lr32.onnx
"""
import os
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'test', 'fixtures'))
import numpy as np
from onnx import TensorProto, helper
import make_fixture_models as m
F = 32
rng = np.random.default_rng(11)
coef = [float(x) for x in rng.normal(0, 0.3, F)]
intercept = 0.05
node = helper.make_node("LinearClassifier", ["float_input"], ["label", "probabilities"], domain="ai.onnx.ml", name="LinearClassifier",
    coefficients=[-c for c in coef] + coef, intercepts=[-intercept, intercept], classlabels_ints=[0, 1], post_transform="LOGISTIC", multi_class=0)
graph = helper.make_graph([node], "sklearn_logreg32",
    [helper.make_tensor_value_info("float_input", TensorProto.FLOAT, [None, F])],
    [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
     helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])])
out = sys.argv[1] if len(sys.argv) > 1 else 'lr32.onnx'
m.save(os.path.dirname(os.path.abspath(out)), os.path.basename(out), graph, m.OPSET_ML)
print(out)
