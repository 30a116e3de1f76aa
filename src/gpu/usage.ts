// WebGPU's buffer-usage and map-mode bits, fixed by the spec. Spelled out here so modules can
// use them at load time, before Node code installs the `GPUBufferUsage` global.
export const Usage = {
  MAP_READ: 0x0001,
  MAP_WRITE: 0x0002,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  UNIFORM: 0x0040,
  STORAGE: 0x0080,
} as const;
export const MAP_READ_MODE = 0x0001;
