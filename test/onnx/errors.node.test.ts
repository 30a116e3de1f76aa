// ORT's error strings → HearthErrors, for messages the real models in the other tests do not
// produce here (they come from other builds, other EPs, or other failures). The strings are
// copied from onnxruntime-web 1.30 output.
import { describe, expect, it } from 'vitest';
import { sessionCreateError, sessionRunError } from '../../src/onnx/errors.ts';

const model = 'ab'.repeat(32);

describe('ORT error strings', () => {
  it('strips the C++ source location and names a too-new opset', () => {
    const e = sessionCreateError(
      new Error(
        "Can't create a session. ERROR_CODE: 1, ERROR_MESSAGE: /mnt/azure_nvme_temp/_work/1/s/onnxruntime/core/graph/model_load_utils.h:56 void onnxruntime::model_load_utils::ValidateOpsetForDomain(const std::unordered_map<std::string, int> &, const logging::Logger &, bool, const std::string &, int) ONNX Runtime only *guarantees* support for models stamped with official released onnx opset versions. Opset 99 is under development and support for this is limited.",
      ),
      model,
      'wasm',
    );
    expect(e.code).toBe('onnx/unsupported');
    expect(e.message).toContain('opset 99');
    expect(e.details.ort).toMatch(/^ONNX Runtime only/);
    expect(e.details.opset).toBe(99);
  });

  it('names an operator of an unknown domain', () => {
    const e = sessionCreateError(
      new Error(
        "Can't create a session. ERROR_CODE: 1, ERROR_MESSAGE: Fatal error: com.example:Foo(-1) is not a registered function/op",
      ),
      model,
      'wasm',
    );
    expect(e.code).toBe('onnx/unsupported');
    expect(e.message).toContain('"com.example:Foo"');
  });

  it('a WebGPU EP that cannot start is gpu/unavailable', () => {
    const e = sessionCreateError(
      new Error('no available backend found. ERR: [webgpu] WebGPU is not supported in current environment'),
      model,
      'webgpu',
    );
    expect(e.code).toBe('gpu/unavailable');
  });

  it('an invalid graph is onnx/model with ORT’s reason', () => {
    const e = sessionCreateError(
      new Error(
        "Can't create a session. ERROR_CODE: 10, ERROR_MESSAGE: This is an invalid model. Type Error: Type 'tensor(int8)' of input parameter (x) of operator (Relu) in node (Relu_0) is invalid.",
      ),
      model,
      'wasm',
    );
    expect(e.code).toBe('onnx/model');
    expect(e.message).toContain("Type 'tensor(int8)' of input parameter (x)");
  });

  it('names every wrong dimension of an input', () => {
    const e = sessionRunError(
      new Error(
        'failed to call OrtRun(). ERROR_CODE: 2, ERROR_MESSAGE: Got invalid dimensions for input: x for the following indices\n index: 1 Got: 5 Expected: 3\n index: 2 Got: 7 Expected: 8\n Please fix either the inputs/outputs or the model.',
      ),
      model,
      'wasm',
    );
    expect(e.code).toBe('onnx/run');
    expect(e.message).toContain('input "x"');
    expect(e.details.dims).toEqual([
      { index: 1, got: 5, expected: 3 },
      { index: 2, got: 7, expected: 8 },
    ]);
  });

  it('f16 nodes on a GPU without shader-f16 are onnx/unsupported', () => {
    const e = sessionRunError(
      new Error(
        "failed to call OrtRun(). ERROR_CODE: 1, ERROR_MESSAGE: Non-zero status code returned while running Cast node. Name:'Cast_1' Status Message: GenerateSourceCode Program Cast requires f16 but the device does not support it.",
      ),
      model,
      'webgpu',
    );
    expect(e.code).toBe('onnx/unsupported');
    expect(e.details).toMatchObject({ op: 'Cast', node: 'Cast_1', feature: 'shader-f16' });
  });

  it('running out of wasm memory says so', () => {
    const e = sessionRunError(new RangeError('Array buffer allocation failed'), model, 'wasm');
    expect(e.code).toBe('onnx/run');
    expect(e.message).toContain('out of memory');
  });

  it('anything else is still a HearthError with the text', () => {
    const e = sessionRunError('something odd', model, 'wasm');
    expect(e.code).toBe('onnx/run');
    expect(e.message).toContain('something odd');
    expect(e.cause).toBe('something odd');
  });
});
