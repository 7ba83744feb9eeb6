#include "pagekeeper/model_registry.hpp"

#include <atomic>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "pagekeeper/lexical_embedder.hpp"

namespace pagekeeper {
namespace {

TEST(ModelRegistry, ResolvesCanonicalNamesAliasesAndDefaultCaseInsensitively) {
  ModelRegistry registry("lexical");
  registry.add(std::make_shared<LexicalEmbedder>(), {"bow", "Hashing"});
  EXPECT_EQ(registry.resolve("lexical"), "lexical");
  EXPECT_EQ(registry.resolve("LEXICAL"), "lexical");
  EXPECT_EQ(registry.resolve("default"), "lexical");
  EXPECT_EQ(registry.resolve("Default"), "lexical");
  EXPECT_EQ(registry.resolve("bow"), "lexical");
  EXPECT_EQ(registry.resolve("hashing"), "lexical");
  EXPECT_EQ(registry.embedder("DEFAULT")->name(), "lexical");
  const auto aliases = registry.aliases();
  EXPECT_EQ(aliases.at("bow"), "lexical");
  EXPECT_EQ(aliases.at("hashing"), "lexical");
}

TEST(ModelRegistry, UnknownModelErrorListsKnownModels) {
  ModelRegistry registry("lexical");
  registry.add(std::make_shared<LexicalEmbedder>());
  registry.add(std::make_shared<LexicalEmbedder>(LexicalEmbedderOptions{.dimensions = 64}));
  try {
    registry.resolve("AllMiniLML6V2");
    FAIL() << "expected UnknownModelError";
  } catch (const UnknownModelError& e) {
    EXPECT_EQ(e.requested, "AllMiniLML6V2");
    EXPECT_EQ(e.known, (std::vector<std::string>{"lexical", "lexical-64"}));
    const std::string what = e.what();
    EXPECT_NE(what.find("AllMiniLML6V2"), std::string::npos) << what;
    EXPECT_NE(what.find("lexical, lexical-64"), std::string::npos) << what;
  }
  EXPECT_THROW(registry.embedder("nope"), EmbedderInputError);
}

TEST(ModelRegistry, DefaultThatIsNotRegisteredIsAnUnknownModel) {
  ModelRegistry registry("missing");
  registry.add(std::make_shared<LexicalEmbedder>());
  EXPECT_THROW(registry.resolve("default"), UnknownModelError);
  registry.set_default_model("LEXICAL");
  EXPECT_EQ(registry.resolve("default"), "lexical");
  EXPECT_THROW(registry.set_default_model("default"), std::invalid_argument);
}

TEST(ModelRegistry, RefusesDuplicateAndReservedNamesWithoutPartialRegistration) {
  ModelRegistry registry;
  registry.add(std::make_shared<LexicalEmbedder>(), {"bow"});
  EXPECT_THROW(registry.add(std::make_shared<LexicalEmbedder>()), std::invalid_argument);
  auto other = std::make_shared<LexicalEmbedder>(LexicalEmbedderOptions{.dimensions = 32});
  EXPECT_THROW(registry.add(other, {"fresh", "BOW"}), std::invalid_argument);
  EXPECT_THROW(registry.add(other, {"default"}), std::invalid_argument);
  EXPECT_THROW(registry.add(other, {"x", "X"}), std::invalid_argument);
  // None of the refused calls left "lexical-32" or "fresh" behind.
  EXPECT_EQ(registry.models(), (std::vector<std::string>{"lexical"}));
  EXPECT_THROW(registry.resolve("fresh"), UnknownModelError);
  registry.add(other, {"fresh"});
  EXPECT_EQ(registry.resolve("fresh"), "lexical-32");
}

TEST(ModelRegistry, ResolvingNeverCallsTheProvider) {
  ModelRegistry registry;
  auto loads = std::make_shared<std::atomic<int>>(0);
  auto model = std::make_shared<LexicalEmbedder>();
  registry.add("lexical", [loads, model] {
    loads->fetch_add(1);
    return model;
  });
  EXPECT_EQ(registry.resolve("default"), "lexical");
  EXPECT_EQ(registry.resolve("Lexical"), "lexical");
  EXPECT_EQ(loads->load(), 0);
  EXPECT_EQ(registry.embedder("lexical").get(), model.get());
  EXPECT_EQ(loads->load(), 1);
}

TEST(ModelRegistry, ProviderReturningNullIsAnEmbedderError) {
  ModelRegistry registry;
  registry.add("broken", [] { return std::shared_ptr<Embedder>(); });
  EXPECT_THROW(registry.embedder("broken"), EmbedderError);
}

TEST(ModelRegistry, RepeatedResolutionFollowsLaterChanges) {
  // resolve() remembers each thread's last answer; every change must still be seen.
  ModelRegistry first("lexical");
  ModelRegistry second("other");
  first.add(std::make_shared<LexicalEmbedder>());
  second.add(std::make_shared<LexicalEmbedder>(LexicalEmbedderOptions{.dimensions = 32}), {"other"});
  EXPECT_EQ(first.resolve("default"), "lexical");
  EXPECT_EQ(second.resolve("default"), "lexical-32");  // same name, another registry
  EXPECT_EQ(first.resolve("default"), "lexical");
  first.add(std::make_shared<LexicalEmbedder>(LexicalEmbedderOptions{.dimensions = 64}));
  first.set_default_model("lexical-64");
  EXPECT_EQ(first.resolve("default"), "lexical-64");
  EXPECT_THROW(first.resolve("other"), UnknownModelError);
  first.add(std::make_shared<LexicalEmbedder>(LexicalEmbedderOptions{.dimensions = 48}), {"other"});
  EXPECT_EQ(first.resolve("other"), "lexical-48");
}

}  // namespace
}  // namespace pagekeeper
