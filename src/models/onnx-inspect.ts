/**
 * Reads what a model file promises, without running it: inputs, outputs, opsets, metadata.
 * The server learns its serving contract from this for ANY model (ours, sklearn-onnx,
 * onnxmltools, PyTorch), so nothing here assumes a name; it only checks shapes and types
 * and says precisely what it found when they do not fit.
 *
 * A model whose tensors live in external data files is refused: the engine serves models from
 * memory, and onnxruntime would resolve such a file's location against the engine's working
 * directory, so an uploaded model could make the engine read (and serve computations over) any
 * file it can open.
 */
import { onnx } from 'onnx-proto';
import { tfError } from '../errors';

export interface TensorInfo {
  name: string;
  kind: 'tensor' | 'sequence' | 'map' | 'other';
  /**
   * Tensors: the element type ('float', 'double', 'int64', 'int32', 'string', ...).
   * Other kinds: the whole type, e.g. 'seq(map(int64,float))' for sklearn's ZipMap output.
   */
  elemType: string;
  /** Per dimension: a static size, a symbolic name, or null when unnamed. null: unknown rank. */
  dims: (number | string | null)[] | null;
}

export interface OnnxModelInfo {
  irVersion: number;
  producerName: string;
  producerVersion: string;
  opsets: { domain: string; version: number }[];
  /** Graph inputs that are NOT initializers. */
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  metadata: Record<string, string>;
}

export interface ServingContract {
  features: number;
  inputName: string;
  probabilityOutput: string;
  probabilityWidth: 1 | 2;
  labelOutput: string | null;
  classLabels: [string, string];
}

const DEFAULT_CLASS_LABELS: [string, string] = ['DOWN', 'UP'];

const ELEM_TYPES: Record<number, string> = {
  1: 'float',
  2: 'uint8',
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  8: 'string',
  9: 'bool',
  10: 'float16',
  11: 'double',
  12: 'uint32',
  13: 'uint64',
  14: 'complex64',
  15: 'complex128',
  16: 'bfloat16',
};

function fail(message: string): never {
  throw tfError('MODEL_LOAD_FAILED', message);
}

/** Throws MODEL_LOAD_FAILED on bytes that are not an ONNX model. */
export function inspectOnnx(bytes: Uint8Array): OnnxModelInfo {
  if (bytes.length === 0) fail('not an ONNX model: the file is empty');
  let model: onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    fail(`not an ONNX model: the bytes do not decode as an ONNX ModelProto (${(err as Error).message})`);
  }
  // Protobuf decodes many foreign byte strings "successfully" into an empty message, so the
  // decisive check is that the parts every ONNX model has are really there.
  const irVersion = toNumber(model.irVersion);
  const graph = model.graph;
  if (!graph || irVersion < 1 || graph.output == null || graph.output.length === 0) {
    fail(
      `not an ONNX model: ${bytes.length} bytes decode without ` +
        (!graph ? 'a graph' : irVersion < 1 ? 'an IR version' : 'any graph output'),
    );
  }
  refuseExternalData(model);
  const initializerNames = new Set((graph.initializer ?? []).map((t) => t.name ?? ''));
  const metadata: Record<string, string> = {};
  for (const entry of model.metadataProps ?? []) metadata[entry.key ?? ''] = entry.value ?? '';
  return {
    irVersion,
    producerName: model.producerName ?? '',
    producerVersion: model.producerVersion ?? '',
    opsets: (model.opsetImport ?? []).map((o) => ({ domain: o.domain ?? '', version: toNumber(o.version) })),
    inputs: (graph.input ?? []).filter((v) => !initializerNames.has(v.name ?? '')).map(valueInfo),
    outputs: graph.output.map(valueInfo),
    metadata,
  };
}

/** A tensor somewhere in the model (initializer, attribute, sparse tensor, subgraph) and where. */
interface PlacedTensor {
  tensor: onnx.ITensorProto;
  where: string;
}

function* graphTensors(g: onnx.IGraphProto, where: string): Generator<PlacedTensor> {
  for (const t of g.initializer ?? []) yield { tensor: t, where: `${where} initializer '${t.name ?? ''}'` };
  for (const st of g.sparseInitializer ?? []) yield* sparseTensors(st, `${where} sparse initializer`);
  for (const n of g.node ?? []) yield* nodeTensors(n, `${where} node '${n.name || n.opType || '?'}'`);
}

function* sparseTensors(st: onnx.ISparseTensorProto, where: string): Generator<PlacedTensor> {
  if (st.values) yield { tensor: st.values, where: `${where} '${st.values.name ?? ''}' (values)` };
  if (st.indices) yield { tensor: st.indices, where: `${where} '${st.values?.name ?? ''}' (indices)` };
}

function* nodeTensors(n: onnx.INodeProto, where: string): Generator<PlacedTensor> {
  for (const a of n.attribute ?? []) {
    const at = `${where} attribute '${a.name ?? ''}'`;
    if (a.t) yield { tensor: a.t, where: at };
    for (const t of a.tensors ?? []) yield { tensor: t, where: at };
    if (a.sparseTensor) yield* sparseTensors(a.sparseTensor, at);
    for (const st of a.sparseTensors ?? []) yield* sparseTensors(st, at);
    if (a.g) yield* graphTensors(a.g, `${at} subgraph`);
    for (const g of a.graphs ?? []) yield* graphTensors(g, `${at} subgraph`);
  }
}

function* modelTensors(model: onnx.IModelProto): Generator<PlacedTensor> {
  if (model.graph) yield* graphTensors(model.graph, 'graph');
  for (const f of model.functions ?? []) for (const n of f.node ?? []) yield* nodeTensors(n, `function '${f.name ?? ''}' node '${n.name || n.opType || '?'}'`);
  for (const ti of model.trainingInfo ?? []) {
    if (ti.initialization) yield* graphTensors(ti.initialization, 'training initialization graph');
    if (ti.algorithm) yield* graphTensors(ti.algorithm, 'training algorithm graph');
  }
}

/** Throws MODEL_LOAD_FAILED naming the first tensor whose data is in an external file. */
function refuseExternalData(model: onnx.IModelProto): void {
  for (const { tensor, where } of modelTensors(model)) {
    const entries = tensor.externalData ?? [];
    if (tensor.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL && entries.length === 0) continue;
    const location = entries.find((e) => e.key === 'location')?.value;
    fail(
      `the model keeps tensor data in external files (${where}` +
        (location !== undefined ? ` at ${JSON.stringify(location)}` : '') +
        '), which the engine does not load: save the model with every tensor inside the file ' +
        '(python onnx: onnx.save_model(model, path, save_as_external_data=False))',
    );
  }
}

/**
 * How to serve the model: its single float input `[N, F]`, the output carrying class
 * probabilities (`[N,2]`, or `[N,1]` = P(class 1)), an optional int64 label output, and the
 * class names. `featuresHint` (FEATURES=F) is needed only when F is symbolic in the file.
 */
export function servingContract(info: OnnxModelInfo, featuresHint?: number): ServingContract {
  if (featuresHint !== undefined && !(Number.isInteger(featuresHint) && featuresHint > 0)) {
    fail(`FEATURES must be a positive integer, got ${featuresHint}`);
  }
  if (info.inputs.length !== 1) {
    fail(
      `the model must have exactly one input (a float tensor [N, F]); it has ${info.inputs.length}: ` +
        (info.inputs.map(describe).join(', ') || 'none'),
    );
  }
  const input = info.inputs[0]!;
  if (input.kind !== 'tensor' || input.elemType !== 'float') {
    fail(`the model input must be a float32 tensor [N, F]; found ${describe(input)}`);
  }
  if (input.dims === null || input.dims.length !== 2) {
    fail(
      `the model input must have rank 2 ([N, F]); found ${describe(input)}` +
        (input.dims === null ? ' (no shape in the file)' : ` (rank ${input.dims.length})`),
    );
  }
  const batch = input.dims[0];
  if (typeof batch === 'number') {
    // The engine batches rows; a file that fixes N would fail on the first batch of another size.
    fail(
      `the model input ${describe(input)} fixes the batch size to ${batch}; export it with a dynamic first ` +
        'dimension (sklearn-onnx: FloatTensorType([None, F]); PyTorch: dynamic_axes={input: {0: "N"}})',
    );
  }
  const features = featureCount(input, featuresHint);

  const probability = pickProbabilityOutput(info.outputs);
  const label = info.outputs.find((o) => o.kind === 'tensor' && o.elemType === 'int64');
  return {
    features,
    inputName: input.name,
    probabilityOutput: probability.name,
    probabilityWidth: probability.dims![probability.dims!.length - 1] as 1 | 2,
    labelOutput: label ? label.name : null,
    classLabels: classLabels(info.metadata),
  };
}

function featureCount(input: TensorInfo, hint: number | undefined): number {
  const last = input.dims![1];
  if (typeof last === 'number') {
    if (last < 1) fail(`the model input ${describe(input)} has no features`);
    if (hint !== undefined && hint !== last) {
      fail(`FEATURES=${hint} disagrees with the model, whose input ${describe(input)} takes ${last} features`);
    }
    return last;
  }
  if (hint === undefined) {
    fail(
      `the model input ${describe(input)} does not fix the number of features; ` +
        'set FEATURES=F (the number of features per row) to serve it',
    );
  }
  return hint;
}

function pickProbabilityOutput(outputs: TensorInfo[]): TensorInfo {
  const candidates = outputs.filter((o) => {
    if (o.kind !== 'tensor' || o.elemType !== 'float' || o.dims === null || o.dims.length !== 2) return false;
    const last = o.dims[1];
    return last === 2 || last === 1;
  });
  if (candidates.length === 0) {
    const found = outputs.map(describe).join(', ');
    if (outputs.some((o) => o.kind !== 'tensor')) {
      fail(
        `no float32 tensor output with class probabilities ([N,2] or [N,1]); found ${found}. ` +
          "A sequence/map output is sklearn's ZipMap: export with ZipMap disabled (options={'zipmap': False})",
      );
    }
    fail(`no float32 tensor output with class probabilities ([N,2] or [N,1]); found ${found}`);
  }
  // Several candidates: trust the conventional names before the order of the outputs.
  return (
    candidates.find((o) => o.name === 'probabilities') ??
    candidates.find((o) => /prob/i.test(o.name)) ??
    candidates.find((o) => o.dims![o.dims!.length - 1] === 2) ??
    candidates[0]!
  );
}

function classLabels(metadata: Record<string, string>): [string, string] {
  const raw = metadata['class_labels'];
  if (raw === undefined) return [...DEFAULT_CLASS_LABELS];
  const names = raw.split(',').map((s) => s.trim());
  if (names.length !== 2 || names.some((n) => n.length === 0)) {
    fail(`metadata class_labels must be two comma-separated names (class 0, class 1); found ${JSON.stringify(raw)}`);
  }
  return [names[0]!, names[1]!];
}

function valueInfo(v: onnx.IValueInfoProto): TensorInfo {
  const name = v.name ?? '';
  const type = v.type;
  if (type?.tensorType) {
    const t = type.tensorType;
    return { name, kind: 'tensor', elemType: elemTypeName(t.elemType), dims: t.shape ? t.shape.dim!.map(dim) : null };
  }
  if (type?.sequenceType) return { name, kind: 'sequence', elemType: typeName(type), dims: null };
  if (type?.mapType) return { name, kind: 'map', elemType: typeName(type), dims: null };
  return { name, kind: 'other', elemType: typeName(type), dims: null };
}

function dim(d: onnx.TensorShapeProto.IDimension): number | string | null {
  if (d.dimValue != null) return toNumber(d.dimValue);
  if (d.dimParam != null && d.dimParam !== '') return d.dimParam;
  return null;
}

/** A compact spelling of any ONNX type, e.g. 'float', 'seq(map(int64,float))'. */
function typeName(type: onnx.ITypeProto | null | undefined): string {
  if (!type) return 'unknown';
  if (type.tensorType) return elemTypeName(type.tensorType.elemType);
  if (type.sequenceType) return `seq(${typeName(type.sequenceType.elemType)})`;
  if (type.mapType) return `map(${elemTypeName(type.mapType.keyType)},${typeName(type.mapType.valueType)})`;
  if (type.optionalType) return `optional(${typeName(type.optionalType.elemType)})`;
  if (type.sparseTensorType) return `sparse(${elemTypeName(type.sparseTensorType.elemType)})`;
  return 'unknown';
}

function elemTypeName(code: number | null | undefined): string {
  return (code != null && ELEM_TYPES[code]) || `type#${code ?? 0}`;
}

/** e.g. `'float_input' float [N,4]`, `'output_probability' seq(map(int64,float))`. */
function describe(t: TensorInfo): string {
  const shape = t.dims === null ? '' : ` [${t.dims.map((d) => (d === null ? '?' : String(d))).join(',')}]`;
  return `'${t.name}' ${t.elemType}${shape}`;
}

/** protobufjs hands int64 fields back as Long objects when the `long` package is present. */
function toNumber(v: number | { toNumber(): number } | null | undefined): number {
  if (v == null) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}
