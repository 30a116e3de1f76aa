# Sourced by the test and bench scripts: finds Chromium (installing Debian's where it can) and
# points Dawn at a Vulkan driver. Prints what to do when something cannot be had.
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM_PATH" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Chromium not found at $CHROMIUM_PATH: installing Debian's chromium with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium libvulkan1 >/dev/null
  fi
  if [ ! -x "$CHROMIUM_PATH" ]; then
    echo "Chromium is missing. Install Debian's package (as root: apt-get install -y chromium libvulkan1)" >&2
    echo "or set CHROMIUM_PATH to a Chromium binary." >&2
    exit 1
  fi
fi
# Dawn (the webgpu package) loads libvulkan.so.1 from the system; Debian's chromium brings its own copy only.
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1 '; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libvulkan1 >/dev/null || true
  fi
  ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1 ' || export LD_LIBRARY_PATH="$(dirname "$CHROMIUM_PATH")/../lib/chromium:${LD_LIBRARY_PATH:-}"
fi
# SwiftShader's Vulkan driver ships with Debian's chromium; set HEARTH_NATIVE_VULKAN=1 to use the system's drivers.
if [ -z "${VK_ICD_FILENAMES:-}" ] && [ -z "${VK_DRIVER_FILES:-}" ] && [ -z "${HEARTH_NATIVE_VULKAN:-}" ]; then
  export VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json
fi
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "${XDG_RUNTIME_DIR}" ]; then
  export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/hearth-xdg-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi
