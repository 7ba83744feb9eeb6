# FindLlama.cmake: locates a llama.cpp runtime (headers + shared libraries) without building it.
#
# Search order:
#   1. LLAMA_ROOT (CMake cache variable or environment variable): a llama.cpp install prefix
#      (include/ + lib/) or a llama.cpp source tree with its CMake build in build/.
#   2. <project>/third_party/llama, filled by scripts/fetch-llama.sh (pinned prebuilt
#      node-llama-cpp 3.21.1 libraries and the matching headers).
#   3. The system's default prefixes (a distribution package or `make install`).
#
# Result variables:
#   Llama_FOUND, Llama_INCLUDE_DIRS, Llama_LIBRARY, Llama_LIBRARY_DIR (the folder of libllama,
#   where dynamically loaded ggml backends such as libggml-cpu-*.so usually live).
# Imported targets (GLOBAL, so every directory of the project sees them):
#   Llama::ggml-base  libggml-base (ggml core and the GGUF reader/writer)
#   Llama::llama      libllama, bringing libggml and libggml-base with it
# Safe to call more than once: results are cached and targets are created only once.

set(LLAMA_ROOT "$ENV{LLAMA_ROOT}" CACHE PATH "llama.cpp install prefix or build tree (optional)")

set(_llama_hints)
if(LLAMA_ROOT)
  list(APPEND _llama_hints ${LLAMA_ROOT})
endif()
list(APPEND _llama_hints ${PROJECT_SOURCE_DIR}/third_party/llama)

find_path(Llama_INCLUDE_DIR llama.h
  HINTS ${_llama_hints}
  PATH_SUFFIXES include)
find_path(Llama_GGML_INCLUDE_DIR gguf.h
  HINTS ${_llama_hints}
  PATH_SUFFIXES include ggml/include)
set(_llama_lib_suffixes lib lib64 build/bin build/src build/ggml/src)
find_library(Llama_LIBRARY NAMES llama llama.v0.4.0
  HINTS ${_llama_hints} PATH_SUFFIXES ${_llama_lib_suffixes})
find_library(Llama_GGML_LIBRARY NAMES ggml ggml.v0.4.0
  HINTS ${_llama_hints} PATH_SUFFIXES ${_llama_lib_suffixes})
find_library(Llama_GGML_BASE_LIBRARY NAMES ggml-base
  HINTS ${_llama_hints} PATH_SUFFIXES ${_llama_lib_suffixes})

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Llama
  REQUIRED_VARS Llama_LIBRARY Llama_GGML_LIBRARY Llama_GGML_BASE_LIBRARY Llama_INCLUDE_DIR
                Llama_GGML_INCLUDE_DIR)

if(Llama_FOUND)
  set(Llama_INCLUDE_DIRS ${Llama_INCLUDE_DIR} ${Llama_GGML_INCLUDE_DIR})
  list(REMOVE_DUPLICATES Llama_INCLUDE_DIRS)
  get_filename_component(Llama_LIBRARY_DIR ${Llama_LIBRARY} DIRECTORY)
  if(NOT TARGET Llama::ggml-base)
    add_library(Llama::ggml-base SHARED IMPORTED GLOBAL)
    set_target_properties(Llama::ggml-base PROPERTIES
      IMPORTED_LOCATION ${Llama_GGML_BASE_LIBRARY}
      INTERFACE_INCLUDE_DIRECTORIES "${Llama_INCLUDE_DIRS}")
    add_library(Llama::ggml SHARED IMPORTED GLOBAL)
    set_target_properties(Llama::ggml PROPERTIES
      IMPORTED_LOCATION ${Llama_GGML_LIBRARY}
      INTERFACE_LINK_LIBRARIES Llama::ggml-base)
    add_library(Llama::llama SHARED IMPORTED GLOBAL)
    set_target_properties(Llama::llama PROPERTIES
      IMPORTED_LOCATION ${Llama_LIBRARY}
      INTERFACE_LINK_LIBRARIES "Llama::ggml;Llama::ggml-base")
  endif()
endif()
mark_as_advanced(Llama_INCLUDE_DIR Llama_GGML_INCLUDE_DIR Llama_LIBRARY Llama_GGML_LIBRARY
                 Llama_GGML_BASE_LIBRARY)
