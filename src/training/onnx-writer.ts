/**
 * Writes the project's ensemble as an ONNX model (onnx-proto messages, protobufjs encoding).
 *
 *   input [N,F] ─Sub(mean)─Div(std)─┬─ MatMul Add Sigmoid ──────────────┐ (logistic regression)
 *                                   └─ MatMul Add Relu MatMul Add Sigmoid ┤ (MLP)
 *                                      mean of the branches = p1 [N,1] ◀─┘
 *   probabilities [N,2] = Concat(1 - p1, p1)      label [N] = ArgMax(probabilities)
 *
 * Outputs follow the sklearn-onnx convention with ZipMap off (`label` int64, then
 * `probabilities` float32), so the server treats this model like any exported one. The
 * bytes are a pure function of the parameters: no timestamps, metadata in a fixed order,
 * which is what lets a test check that the bundled model is reproducible.
 */
import { onnx } from 'onnx-proto';
import { tfError } from '../errors';
import type { Standardizer } from './standardize';
import type { LogregModel } from './logreg';
import type { MlpModel } from './mlp';

export const ONNX_IR_VERSION = 8;
export const ONNX_OPSET = 17;
export const PRODUCER_NAME = 'tradeflow';
/** Version of this graph layout (not of the package): bump it when the emitted graph changes. */
export const WRITER_VERSION = '1.0.0';
export const INPUT_NAME = 'input';
export const LABEL_OUTPUT = 'label';
export const PROBABILITIES_OUTPUT = 'probabilities';
export const DEFAULT_CLASS_LABELS: readonly [string, string] = ['DOWN', 'UP'];

export interface EnsembleOnnxInput {
  /** Column names, in input order; their count is F. */
  readonly featureNames: readonly string[];
  readonly standardizer: Standardizer;
  /** At least one branch; with both, the graph averages their class-1 probabilities. */
  readonly logreg?: LogregModel;
  readonly mlp?: MlpModel;
  /** Index 0 names class 0. Defaults to DOWN,UP. */
  readonly classLabels?: readonly [string, string];
  /** `model_name` metadata; defaults to `ensemble`. */
  readonly modelName?: string;
  /**
   * Extra `metadata_props` (seed, data and trainer settings, ...), written after the fixed
   * keys in sorted key order. May not redefine model_name, class_labels or feature_names.
   */
  readonly metadata?: Readonly<Record<string, string>>;
  readonly docString?: string;
}

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;
const RESERVED_METADATA = ['model_name', 'class_labels', 'feature_names'];

/** The encoded ONNX model. Throws INTERNAL on inconsistent parameters. */
export function writeEnsembleOnnx(input: EnsembleOnnxInput): Uint8Array {
  validate(input);
  const F = input.featureNames.length;
  const nodes: onnx.INodeProto[] = [];
  const initializers: onnx.ITensorProto[] = [];
  const constant = (name: string, dims: number[], values: ArrayLike<number>): string => {
    initializers.push(floatTensor(name, dims, values));
    return name;
  };
  const op = (opType: string, inputs: string[], output: string, attribute: onnx.IAttributeProto[] = []): string => {
    nodes.push({ opType, input: inputs, output: [output], name: `${output}_${opType}`, attribute });
    return output;
  };

  const centered = op('Sub', [INPUT_NAME, constant('feature_mean', [F], input.standardizer.mean)], 'centered');
  const x = op('Div', [centered, constant('feature_std', [F], input.standardizer.std)], 'standardized');

  const branches: string[] = [];
  if (input.logreg) {
    const lr = input.logreg;
    const logit = op(
      'Add',
      [op('MatMul', [x, constant('logreg_weights', [F, 1], lr.weights)], 'logreg_matmul'), constant('logreg_bias', [1], [lr.bias])],
      'logreg_logit',
    );
    branches.push(op('Sigmoid', [logit], 'logreg_p1'));
  }
  if (input.mlp) {
    const m = input.mlp;
    const h = m.hidden;
    const pre = op('Add', [op('MatMul', [x, constant('mlp_w1', [F, h], m.w1)], 'mlp_matmul1'), constant('mlp_b1', [h], m.b1)], 'mlp_pre');
    const hidden = op('Relu', [pre], 'mlp_hidden');
    const logit = op(
      'Add',
      [op('MatMul', [hidden, constant('mlp_w2', [h, 1], m.w2)], 'mlp_matmul2'), constant('mlp_b2', [1], [m.b2])],
      'mlp_logit',
    );
    branches.push(op('Sigmoid', [logit], 'mlp_p1'));
  }
  // Multiplying by 0.5 is exact in float32, so the graph's mean matches a TypeScript mean.
  const p1 =
    branches.length === 1
      ? branches[0]!
      : op('Mul', [op('Add', branches, 'p1_sum'), constant('half', [], [0.5])], 'p1');
  const p0 = op('Sub', [constant('one', [], [1]), p1], 'p0');
  op('Concat', [p0, p1], PROBABILITIES_OUTPUT, [intAttr('axis', 1)]);
  op('ArgMax', [PROBABILITIES_OUTPUT], LABEL_OUTPUT, [intAttr('axis', 1), intAttr('keepdims', 0)]);

  const model: onnx.IModelProto = {
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: PRODUCER_NAME,
    producerVersion: WRITER_VERSION,
    docString: input.docString ?? 'tradeflow UP/DOWN ensemble: mean of a logistic regression and an MLP on standardised features',
    graph: {
      name: 'tradeflow_ensemble',
      node: nodes,
      initializer: initializers,
      input: [valueInfo(INPUT_NAME, FLOAT, ['N', F])],
      output: [valueInfo(LABEL_OUTPUT, INT64, ['N']), valueInfo(PROBABILITIES_OUTPUT, FLOAT, ['N', 2])],
    },
    metadataProps: metadataProps(input),
  };
  return new Uint8Array(onnx.ModelProto.encode(model).finish());
}

function metadataProps(input: EnsembleOnnxInput): onnx.IStringStringEntryProto[] {
  const labels = input.classLabels ?? DEFAULT_CLASS_LABELS;
  const fixed: [string, string][] = [
    ['model_name', input.modelName ?? 'ensemble'],
    ['class_labels', labels.join(',')],
    ['feature_names', input.featureNames.join(',')],
  ];
  const extra = Object.keys(input.metadata ?? {})
    .sort()
    .map((k): [string, string] => [k, input.metadata![k]!]);
  return [...fixed, ...extra].map(([key, value]) => ({ key, value }));
}

/** A float32 initializer stored as little-endian raw bytes. */
function floatTensor(name: string, dims: number[], values: ArrayLike<number>): onnx.ITensorProto {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return { name, dims, dataType: FLOAT, rawData: bytes };
}

function valueInfo(name: string, elemType: number, dims: (number | string)[]): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function intAttr(name: string, value: number): onnx.IAttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INT, i: value };
}

// The trainer checks its rows before it trains, so parameters the writer cannot write are its bug.
function validate(input: EnsembleOnnxInput): void {
  const fail = (why: string): never => {
    throw tfError('INTERNAL', `cannot write the ensemble ONNX model: ${why}`);
  };
  const F = input.featureNames.length;
  if (F < 1) fail('no feature names');
  for (const name of input.featureNames) {
    if (name.length === 0 || name.includes(',')) fail(`feature name ${JSON.stringify(name)} is empty or contains a comma`);
  }
  const labels = input.classLabels ?? DEFAULT_CLASS_LABELS;
  if (labels.length !== 2 || labels.some((l) => l.length === 0 || l.includes(','))) {
    fail(`class labels must be two non-empty names without commas, got ${JSON.stringify(labels)}`);
  }
  const vector = (what: string, v: ArrayLike<number>, length: number): void => {
    if (v.length !== length) fail(`${what} has ${v.length} values, expected ${length}`);
    for (let i = 0; i < v.length; i++) {
      if (!Number.isFinite(v[i]!)) fail(`${what}[${i}] is ${v[i]}`);
    }
  };
  vector('standardizer mean', input.standardizer.mean, F);
  vector('standardizer std', input.standardizer.std, F);
  for (let j = 0; j < F; j++) {
    if (!(input.standardizer.std[j]! > 0)) fail(`standardizer std[${j}] is ${input.standardizer.std[j]}, must be > 0`);
  }
  if (!input.logreg && !input.mlp) fail('neither a logistic regression nor an MLP was given');
  if (input.logreg) {
    vector('logreg weights', input.logreg.weights, F);
    vector('logreg bias', [input.logreg.bias], 1);
  }
  if (input.mlp) {
    const m = input.mlp;
    if (m.features !== F) fail(`the MLP takes ${m.features} features, the feature list has ${F}`);
    if (!Number.isInteger(m.hidden) || m.hidden < 1) fail(`MLP hidden size ${m.hidden} is not a positive integer`);
    vector('MLP w1', m.w1, F * m.hidden);
    vector('MLP b1', m.b1, m.hidden);
    vector('MLP w2', m.w2, m.hidden);
    vector('MLP b2', [m.b2], 1);
  }
  for (const key of Object.keys(input.metadata ?? {})) {
    if (RESERVED_METADATA.includes(key)) fail(`metadata key ${key} is written by the writer itself`);
  }
}
