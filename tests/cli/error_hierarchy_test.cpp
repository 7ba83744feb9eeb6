// Every typed error of the library derives from pagekeeper::Error, so one handler tells
// "pagekeeper refused or failed" from anything else. The static_asserts cover every class;
// the tests throw one real error per component through its public entry point and catch it
// as pagekeeper::Error. (This test sits with the top layer because it sees every component.)

#include <gtest/gtest.h>

#include <string>
#include <type_traits>
#include <vector>

#include "cli/server_client.hpp"
#include "cli/trace.hpp"
#include "llama/llama_runtime.hpp"
#include "pagekeeper/adapter_loader.hpp"
#include "pagekeeper/adapter_pager.hpp"
#include "pagekeeper/embedder.hpp"
#include "pagekeeper/errors.hpp"
#include "pagekeeper/model_registry.hpp"
#include "pagekeeper/pool.hpp"
#include "pagekeeper/pressure.hpp"
#include "pagekeeper/server.hpp"
#include "pagekeeper/server_config.hpp"
#include "pagekeeper/vector_math.hpp"
#include "server/requests.hpp"

namespace pagekeeper {
namespace {

static_assert(std::is_base_of_v<std::runtime_error, Error>);
// Refused arguments and configuration values.
static_assert(std::is_base_of_v<Error, InvalidArgument>);
static_assert(std::is_base_of_v<InvalidArgument, ServerConfigError>);
static_assert(std::is_base_of_v<InvalidArgument, PressureConfigError>);
static_assert(std::is_base_of_v<InvalidArgument, VectorDimensionError>);
static_assert(std::is_base_of_v<InvalidArgument, AdapterInfoError>);
// Tiers.
static_assert(std::is_base_of_v<Error, PagingError>);
static_assert(std::is_base_of_v<PagingError, TierExhausted>);
static_assert(std::is_base_of_v<PagingError, DiskCapacity>);
static_assert(std::is_base_of_v<PagingError, TierUnavailable>);
// The rest, one per component.
static_assert(std::is_base_of_v<Error, LoadError>);
static_assert(std::is_base_of_v<Error, EmbedderError>);
static_assert(std::is_base_of_v<Error, EmbedderInputError>);
static_assert(std::is_base_of_v<Error, UnknownModelError>);
static_assert(std::is_base_of_v<Error, LlamaError>);
static_assert(std::is_base_of_v<Error, AdapterLoadError>);
static_assert(std::is_base_of_v<Error, PersonaLimitReached>);
static_assert(std::is_base_of_v<Error, ServerError>);
static_assert(std::is_base_of_v<Error, RequestError>);
static_assert(std::is_base_of_v<Error, TraceError>);
static_assert(std::is_base_of_v<Error, cli::ServerClientError>);

// Runs `body`, which must throw; returns what() of the pagekeeper::Error it threw.
template <typename Body>
std::string caught_as_error(Body&& body) {
  try {
    body();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "nothing thrown as pagekeeper::Error";
  return {};
}

TEST(ErrorHierarchy, CoreAndTiers) {
  EXPECT_NE(caught_as_error([] { ensure_projected_disk_capacity("disk", 0, 0, 1); }).find("capacity is unknown"),
            std::string::npos);
}

TEST(ErrorHierarchy, Broker) {
  EXPECT_NE(caught_as_error([] { PressureThresholds{0.8, 0.6, 0.95}.validate(); }), "");
}

TEST(ErrorHierarchy, Embedding) {
  const std::vector<float> two(2, 1.0F);
  const std::vector<float> three(3, 1.0F);
  EXPECT_NE(caught_as_error([&] { (void)cosine_similarity(two, three); }).find("Dimension mismatch"),
            std::string::npos);
  ModelRegistry registry;
  EXPECT_NE(caught_as_error([&] { (void)registry.resolve("no-such-model"); }).find("no-such-model"),
            std::string::npos);
}

TEST(ErrorHierarchy, Llama) {
  // LlamaError for the missing file, or TierUnavailable in a build without llama.cpp.
  EXPECT_NE(caught_as_error([] { (void)validate_gguf_file("/nonexistent/model.gguf"); }), "");
}

TEST(ErrorHierarchy, Adapter) {
  EXPECT_NE(caught_as_error([] { validate_adapter_info(AdapterInfo{}); }), "");
}

TEST(ErrorHierarchy, Server) {
  ServerConfig config;
  config.history_samples = 0;
  EXPECT_NE(caught_as_error([&] { config.validate(); }).find("history_samples"), std::string::npos);
  EXPECT_NE(caught_as_error([] { (void)parse_command_params("[1"); }), "");
}

TEST(ErrorHierarchy, Cli) {
  EXPECT_NE(caught_as_error([] { (void)TraceReader::open_file("/nonexistent/pagekeeper-trace"); }), "");
}

}  // namespace
}  // namespace pagekeeper
