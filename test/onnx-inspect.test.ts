import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TradeflowError } from '../src/errors';
import { inspectOnnx, servingContract, type OnnxModelInfo, type ServingContract, type TensorInfo } from '../src/models/onnx-inspect';
import { Rng } from '../src/training/rng';
import { FIXTURE_MODELS, makeFixtureModels } from './fixtures/fixtures';

const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };

/** The TradeflowError a call throws; fails the test when it throws nothing or something else. */
function modelError(fn: () => unknown): TradeflowError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TradeflowError);
    expect((err as TradeflowError).code).toBe('MODEL_LOAD_FAILED');
    return err as TradeflowError;
  }
  throw new Error('expected MODEL_LOAD_FAILED, nothing was thrown');
}

/** Runs rows through a session the way the server would: by the contract's names only. */
async function runByContract(bytes: Uint8Array, contract: ServingContract, rows: number): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes, SESSION_OPTIONS);
  try {
    const r = new Rng(rows);
    const x = Float32Array.from({ length: rows * contract.features }, () => r.gaussian());
    const feeds = { [contract.inputName]: new ort.Tensor('float32', x, [rows, contract.features]) };
    const out = await session.run(feeds, [contract.probabilityOutput]);
    const probs = out[contract.probabilityOutput]!;
    expect(probs.type).toBe('float32');
    expect(probs.dims).toEqual([rows, contract.probabilityWidth]);
    return probs.data as Float32Array;
  } finally {
    await session.release();
  }
}

describe('inspectOnnx on the bundled model', () => {
  const bytes = readFileSync(join(__dirname, '..', 'models', 'ensemble.onnx'));

  it('reads inputs, outputs, opsets and metadata', () => {
    const info = inspectOnnx(bytes);
    expect(info.irVersion).toBe(8);
    expect(info.producerName).toBe('tradeflow');
    expect(info.producerVersion).not.toBe('');
    expect(info.opsets).toEqual([{ domain: '', version: 17 }]);
    // Initializers are not inputs.
    expect(info.inputs).toEqual([{ name: 'input', kind: 'tensor', elemType: 'float', dims: ['N', 16] }]);
    expect(info.outputs.map((o) => o.name)).toEqual(['label', 'probabilities']);
    expect(info.metadata['class_labels']).toBe('DOWN,UP');
  });

  it('accepts a matching FEATURES hint and refuses a different one', () => {
    const info = inspectOnnx(bytes);
    expect(servingContract(info, 16).features).toBe(16);
    const err = modelError(() => servingContract(info, 15));
    expect(err.message).toContain('FEATURES=15');
    expect(err.message).toContain('16');
  });
});

describe('inspectOnnx on bytes that are not a model', () => {
  const cases: [string, Uint8Array][] = [
    ['empty', new Uint8Array(0)],
    ['JSON text', new TextEncoder().encode('{"model": "ensemble", "weights": [1, 2, 3]}')],
    ['PNG header', Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52])],
    ['zeros', new Uint8Array(64)],
  ];
  const r = new Rng(99);
  for (let k = 0; k < 20; k++) {
    cases.push([`random bytes #${k}`, Uint8Array.from({ length: 16 + r.int(400) }, () => r.int(256))]);
  }
  for (const [what, bytes] of cases) {
    it(`refuses ${what} with MODEL_LOAD_FAILED`, () => {
      expect(modelError(() => inspectOnnx(bytes)).message).toMatch(/^not an ONNX model/);
    });
  }
});

describe('servingContract rules', () => {
  const tensor = (name: string, elemType: string, dims: TensorInfo['dims']): TensorInfo => ({ name, kind: 'tensor', elemType, dims });
  const info = (inputs: TensorInfo[], outputs: TensorInfo[], metadata: Record<string, string> = {}): OnnxModelInfo => ({
    irVersion: 8,
    producerName: 'test',
    producerVersion: '',
    opsets: [{ domain: '', version: 17 }],
    inputs,
    outputs,
    metadata,
  });
  const x = tensor('x', 'float', ['N', 4]);
  const probs = tensor('probabilities', 'float', ['N', 2]);

  it('reads class labels from metadata, index 0 first', () => {
    expect(servingContract(info([x], [probs], { class_labels: 'UP, DOWN' })).classLabels).toEqual(['UP', 'DOWN']);
    expect(servingContract(info([x], [probs])).classLabels).toEqual(['DOWN', 'UP']);
    expect(modelError(() => servingContract(info([x], [probs], { class_labels: 'A,B,C' }))).message).toContain('class_labels');
  });

  it('prefers an output named probabilities, then one containing prob', () => {
    const logits = tensor('logits', 'float', ['N', 2]);
    const p = tensor('output_prob', 'float', ['N', 1]);
    expect(servingContract(info([x], [logits, probs])).probabilityOutput).toBe('probabilities');
    expect(servingContract(info([x], [logits, p]))).toMatchObject({ probabilityOutput: 'output_prob', probabilityWidth: 1 });
    expect(servingContract(info([x], [logits])).probabilityOutput).toBe('logits');
  });

  it('uses a tensor probability output even when a ZipMap output exists', () => {
    const zip: TensorInfo = { name: 'output_probability', kind: 'sequence', elemType: 'seq(map(int64,float))', dims: null };
    const label = tensor('output_label', 'int64', ['N']);
    expect(servingContract(info([x], [label, zip, probs]))).toMatchObject({
      probabilityOutput: 'probabilities',
      labelOutput: 'output_label',
    });
  });

  it('refuses inputs that are not one float tensor [N, F]', () => {
    expect(modelError(() => servingContract(info([tensor('x', 'double', ['N', 4])], [probs]))).message).toContain("'x' double [N,4]");
    expect(modelError(() => servingContract(info([tensor('x', 'float', null)], [probs]))).message).toContain('rank 2');
    expect(modelError(() => servingContract(info([], [probs]))).message).toContain('it has 0');
    expect(modelError(() => servingContract(info([x], [tensor('out', 'float', ['N', 3])]))).message).toContain("'out' float [N,3]");
    expect(modelError(() => servingContract(info([x], [probs]), 0)).message).toContain('positive integer');
    expect(modelError(() => servingContract(info([tensor('x', 'float', [1, 4])], [probs]))).message).toContain(
      'fixes the batch size to 1',
    );
  });
});

describe('contracts of models made by python3-onnx', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tradeflow-fixtures-'));
  let available = false;
  beforeAll(() => {
    available = makeFixtureModels(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const load = (file: string): Uint8Array => readFileSync(join(dir, file));

  // Each case skips (rather than passes) when the tool is missing outside CI.
  const fixtureIt = (name: string, fn: () => unknown): void => {
    it(name, async (ctx) => {
      if (!available) ctx.skip();
      await fn();
    });
  };

  fixtureIt('sklearn-style LinearClassifier: label + probabilities [None,2]', async () => {
    const bytes = load(FIXTURE_MODELS.linearClassifier);
    const info = inspectOnnx(bytes);
    expect(info.opsets).toContainEqual({ domain: 'ai.onnx.ml', version: 1 });
    expect(info.inputs).toEqual([{ name: 'float_input', kind: 'tensor', elemType: 'float', dims: [null, 4] }]);
    const contract = servingContract(info);
    expect(contract).toEqual({
      features: 4,
      inputName: 'float_input',
      probabilityOutput: 'probabilities',
      probabilityWidth: 2,
      labelOutput: 'label',
      classLabels: ['DOWN', 'UP'],
    });
    const p = await runByContract(bytes, contract, 33);
    for (let i = 0; i < 33; i++) {
      expect(p[2 * i]! + p[2 * i + 1]!).toBeCloseTo(1, 6);
      expect(p[2 * i + 1]! > 0 && p[2 * i + 1]! < 1).toBe(true);
    }
  });

  fixtureIt('softmax MLP: single output [batch,2] named output', async () => {
    const bytes = load(FIXTURE_MODELS.softmaxMlp);
    const contract = servingContract(inspectOnnx(bytes));
    expect(contract).toEqual({
      features: 5,
      inputName: 'x',
      probabilityOutput: 'output',
      probabilityWidth: 2,
      labelOutput: null,
      classLabels: ['DOWN', 'UP'],
    });
    const p = await runByContract(bytes, contract, 17);
    for (let i = 0; i < 17; i++) expect(p[2 * i]! + p[2 * i + 1]!).toBeCloseTo(1, 6);
  });

  fixtureIt('sigmoid: single output [N,1] named prob', async () => {
    const bytes = load(FIXTURE_MODELS.sigmoidSingle);
    const contract = servingContract(inspectOnnx(bytes));
    expect(contract).toEqual({
      features: 3,
      inputName: 'features',
      probabilityOutput: 'prob',
      probabilityWidth: 1,
      labelOutput: null,
      classLabels: ['DOWN', 'UP'],
    });
    const p = await runByContract(bytes, contract, 9);
    for (const v of p) expect(v > 0 && v < 1).toBe(true);
  });

  fixtureIt('symbolic feature dimension: needs FEATURES=F, then serves', async () => {
    const bytes = load(FIXTURE_MODELS.symbolicFeatures);
    const info = inspectOnnx(bytes);
    expect(info.inputs[0]!.dims).toEqual(['N', 'F']);
    const err = modelError(() => servingContract(info));
    expect(err.message).toContain('FEATURES=F');
    expect(err.message).toContain("'x' float [N,F]");
    const contract = servingContract(info, 6);
    expect(contract).toMatchObject({ features: 6, inputName: 'x', probabilityOutput: 'prob', probabilityWidth: 1 });
    await runByContract(bytes, contract, 4);
  });

  fixtureIt('rank-3 input: refused, naming the shape found', () => {
    const err = modelError(() => servingContract(inspectOnnx(load(FIXTURE_MODELS.rank3Input))));
    expect(err.message).toContain('rank 2');
    expect(err.message).toContain("'x' float [N,4,2]");
    expect(err.message).toContain('rank 3');
  });

  fixtureIt('two inputs: refused, naming both', () => {
    const err = modelError(() => servingContract(inspectOnnx(load(FIXTURE_MODELS.twoInputs))));
    expect(err.message).toContain('exactly one input');
    expect(err.message).toContain("'a' float [N,2], 'b' float [N,2]");
  });

  fixtureIt('ZipMap output: refused with the export option to use', () => {
    const info = inspectOnnx(load(FIXTURE_MODELS.zipmap));
    expect(info.outputs[1]).toEqual({ name: 'output_probability', kind: 'sequence', elemType: 'seq(map(int64,float))', dims: null });
    const err = modelError(() => servingContract(info));
    expect(err.message).toContain("export with ZipMap disabled (options={'zipmap': False})");
    expect(err.message).toContain("'output_probability' seq(map(int64,float))");
  });

  fixtureIt('NaN output: the contract is valid, so only a warm-up run can catch it', async () => {
    const bytes = load(FIXTURE_MODELS.nanOutput);
    const contract = servingContract(inspectOnnx(bytes));
    expect(contract).toMatchObject({ features: 3, probabilityOutput: 'probabilities', probabilityWidth: 2, labelOutput: 'label' });
    const p = await runByContract(bytes, contract, 5);
    for (const v of p) expect(Number.isNaN(v)).toBe(true);
  });
});

describe('inspectOnnx refuses tensors kept in external data files', () => {
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const EXTERNAL = onnx.TensorProto.DataLocation.EXTERNAL;
  const valueInfo = (name: string, dims: (number | string)[]): onnx.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  });
  const inline = (name: string): onnx.ITensorProto => ({ name, dims: [2], dataType: FLOAT, rawData: new Uint8Array(8) });
  const external = (name: string, location: string, withFlag = true): onnx.ITensorProto => ({
    name,
    dims: [2],
    dataType: FLOAT,
    ...(withFlag ? { dataLocation: EXTERNAL } : {}),
    externalData: [
      { key: 'location', value: location },
      { key: 'offset', value: '0' },
      { key: 'length', value: '8' },
    ],
  });
  /** input [N,2] + w = probabilities [N,2], with `extra` nodes and graph parts. */
  const model = (graph: Partial<onnx.IGraphProto>, rest: Partial<onnx.IModelProto> = {}): Uint8Array =>
    onnx.ModelProto.encode({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      graph: {
        name: 'g',
        input: [valueInfo('input', ['N', 2])],
        output: [valueInfo('probabilities', ['N', 2])],
        ...graph,
        node: [{ opType: 'Add', input: ['input', 'w'], output: ['probabilities'], name: 'add' }, ...(graph.node ?? [])],
        initializer: graph.initializer ?? [inline('w')],
      },
      ...rest,
    }).finish();

  it('accepts the same model with its tensors inside the file', () => {
    expect(inspectOnnx(model({})).outputs.map((o) => o.name)).toEqual(['probabilities']);
  });

  it('refuses an initializer whose data is external, naming it, where it points and what to do', () => {
    const err = modelError(() => inspectOnnx(model({ initializer: [external('w', '../../etc/passwd')] })));
    expect(err.message).toContain("initializer 'w'");
    expect(err.message).toContain('"../../etc/passwd"');
    expect(err.message).toContain('external');
    expect(err.message).toContain('save_as_external_data=False');
  });

  it('refuses external_data entries even without data_location set', () => {
    expect(modelError(() => inspectOnnx(model({ initializer: [external('w', 'weights.bin', false)] }))).message).toContain("initializer 'w'");
  });

  it('looks into node attributes, subgraphs, sparse initializers and functions', () => {
    const constant = (location: string): onnx.INodeProto => ({
      opType: 'Constant',
      output: ['c'],
      name: 'const',
      attribute: [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: external('c', location) }],
    });
    const inIf: onnx.INodeProto = {
      opType: 'If',
      input: ['cond'],
      output: ['y'],
      name: 'branch',
      attribute: [
        { name: 'then_branch', type: onnx.AttributeProto.AttributeType.GRAPH, g: { name: 'then', node: [constant('then.bin')], output: [valueInfo('c', [2])] } },
        { name: 'else_branch', type: onnx.AttributeProto.AttributeType.GRAPH, g: { name: 'else', node: [], output: [valueInfo('c', [2])] } },
      ],
    };
    expect(modelError(() => inspectOnnx(model({ node: [constant('attr.bin')] }))).message).toMatch(/node 'const' attribute 'value'.*"attr\.bin"/);
    expect(modelError(() => inspectOnnx(model({ node: [inIf] }))).message).toMatch(/node 'branch' attribute 'then_branch' subgraph node 'const'.*"then\.bin"/);
    const sparse: onnx.ISparseTensorProto = { values: external('s', 'sparse.bin'), indices: { name: 'si', dims: [1], dataType: onnx.TensorProto.DataType.INT64, rawData: new Uint8Array(8) }, dims: [4] };
    expect(modelError(() => inspectOnnx(model({ sparseInitializer: [sparse] }))).message).toMatch(/sparse initializer 's'.*"sparse\.bin"/);
    const fn: onnx.IFunctionProto = { name: 'f', domain: 'custom', node: [constant('function.bin')] };
    expect(modelError(() => inspectOnnx(model({}, { functions: [fn] }))).message).toMatch(/function 'f' node 'const'.*"function\.bin"/);
  });
});
