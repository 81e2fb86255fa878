/**
 * JSON Schemas of the Open Inference Protocol's answers, written from the specification text
 * (kserve/open-inference-protocol specification/protocol/inference_rest.md) and Triton's
 * extensions (docs/protocol/extension_binary_data.md, extension_statistics.md,
 * extension_model_repository.md, extension_model_configuration.md), not from the engine.
 * Objects are closed where the text lists their fields, so a misspelt field fails.
 */
const str = { type: 'string' };
const int = { type: 'integer', minimum: 0 };
const params = { type: 'object' };

/** $metadata_tensor, plus `parameters` (our accepted input datatypes; clients ignore it). */
const metadataTensor = {
  type: 'object',
  required: ['name', 'datatype', 'shape'],
  additionalProperties: false,
  properties: { name: str, datatype: str, shape: { type: 'array', items: { type: 'integer', minimum: -1 } }, parameters: params },
};

const tensorData = { type: 'array', items: { anyOf: [{ type: 'number' }, { type: 'boolean' }, { type: 'string' }, { type: 'array' }] } };

/** $response_output; with the binary extension `data` is absent and parameters.binary_data_size says how many bytes follow. */
const responseOutput = {
  type: 'object',
  required: ['name', 'shape', 'datatype'],
  additionalProperties: false,
  properties: {
    name: str,
    shape: { type: 'array', items: int },
    datatype: { enum: ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES', 'BF16'] },
    parameters: { type: 'object', properties: { binary_data_size: int } },
    data: tensorData,
  },
  // JSON data, or binary data after the header: one of the two.
  oneOf: [
    { required: ['data'], properties: { data: tensorData } },
    { required: ['parameters'], properties: { parameters: { type: 'object', required: ['binary_data_size'], properties: { binary_data_size: int } } } },
  ],
};

const duration = { type: 'object', required: ['count', 'ns'], additionalProperties: false, properties: { count: int, ns: int } };

export const schemas = {
  /** $metadata_server_response */
  serverMetadata: { type: 'object', required: ['name', 'version', 'extensions'], additionalProperties: false, properties: { name: str, version: str, extensions: { type: 'array', items: str } } },
  /** $metadata_model_response */
  modelMetadata: {
    type: 'object',
    required: ['name', 'platform', 'inputs', 'outputs'],
    additionalProperties: false,
    properties: { name: str, versions: { type: 'array', items: str }, platform: str, inputs: { type: 'array', items: metadataTensor }, outputs: { type: 'array', items: metadataTensor } },
  },
  /** $inference_response */
  inferResponse: {
    type: 'object',
    required: ['model_name', 'outputs'],
    additionalProperties: false,
    properties: { model_name: str, model_version: str, id: str, parameters: params, outputs: { type: 'array', items: responseOutput } },
  },
  /** $inference_error_response (and every other error of the protocol) */
  error: { type: 'object', required: ['error'], additionalProperties: false, properties: { error: str } },
  /** Health: the protocol gives only the status; our bodies are these (clients that parse them need JSON). */
  live: { type: 'object', required: ['live'], additionalProperties: false, properties: { live: { type: 'boolean' } } },
  ready: { type: 'object', required: ['ready'], additionalProperties: false, properties: { ready: { type: 'boolean' } } },
  modelReady: { type: 'object', required: ['ready'], additionalProperties: false, properties: { name: str, ready: { type: 'boolean' } } },
  /** $stats_model_response (statistics extension) */
  stats: {
    type: 'object',
    required: ['model_stats'],
    additionalProperties: false,
    properties: {
      model_stats: {
        type: 'array',
        items: {
          type: 'object',
          required: ['name', 'version', 'last_inference', 'inference_count', 'execution_count', 'inference_stats', 'batch_stats'],
          additionalProperties: false,
          properties: {
            name: str,
            version: str,
            last_inference: int,
            inference_count: int,
            execution_count: int,
            inference_stats: {
              type: 'object',
              required: ['success', 'fail', 'queue', 'compute_input', 'compute_infer', 'compute_output'],
              additionalProperties: false,
              properties: Object.fromEntries(['success', 'fail', 'queue', 'compute_input', 'compute_infer', 'compute_output', 'cache_hit', 'cache_miss'].map((k) => [k, duration])),
            },
            batch_stats: {
              type: 'array',
              items: { type: 'object', required: ['batch_size', 'compute_input', 'compute_infer', 'compute_output'], additionalProperties: false, properties: { batch_size: { type: 'integer', minimum: 1 }, compute_input: duration, compute_infer: duration, compute_output: duration } },
            },
          },
        },
      },
    },
  },
  /** $repository_index_response (model_repository extension) */
  repositoryIndex: {
    type: 'array',
    items: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: str, version: str, state: str, reason: str } },
  },
  /** model_configuration: Triton's ModelConfig as JSON, the fields we give. */
  modelConfig: {
    type: 'object',
    required: ['name', 'platform', 'max_batch_size', 'input', 'output', 'dynamic_batching'],
    properties: {
      name: str,
      platform: str,
      backend: str,
      max_batch_size: int,
      input: { type: 'array', items: { type: 'object', required: ['name', 'data_type', 'dims'], properties: { name: str, data_type: { type: 'string', pattern: '^TYPE_' }, dims: { type: 'array', items: { type: 'integer' } } } } },
      output: { type: 'array', items: { type: 'object', required: ['name', 'data_type', 'dims'], properties: { name: str, data_type: { type: 'string', pattern: '^TYPE_' }, dims: { type: 'array', items: { type: 'integer' } } } } },
      dynamic_batching: { type: 'object', required: ['max_queue_delay_microseconds'], properties: { max_queue_delay_microseconds: int, preferred_batch_size: { type: 'array', items: int } } },
      instance_group: { type: 'array' },
    },
  },
} as const;
