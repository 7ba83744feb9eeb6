// HttpRequest / HttpResponse: header lookup, target splitting and query parameters, which
// every handler relies on whatever engine parsed the request.

#include "server/http_types.hpp"

#include <gtest/gtest.h>

namespace pagekeeper::server {
namespace {

TEST(HttpHeaders, NamesCompareIgnoringCaseAndRepeatsAreKept) {
  HttpHeaders h;
  h.add("Content-Type", "application/json");
  h.add("X-Tag", "a");
  h.add("x-tag", "b");
  ASSERT_NE(h.find("content-type"), nullptr);
  EXPECT_EQ(*h.find("CONTENT-TYPE"), "application/json");
  EXPECT_EQ(h.count("X-TAG"), 2u);
  EXPECT_EQ(*h.find("x-Tag"), "a");
  h.set("X-Tag", "c");
  EXPECT_EQ(h.count("x-tag"), 1u);
  EXPECT_EQ(*h.find("x-tag"), "c");
  h.erase("X-TAG");
  EXPECT_EQ(h.find("x-tag"), nullptr);
  EXPECT_EQ(h.size(), 1u);
}

TEST(HttpRequest, SplitTargetDecodesThePathAndKeepsTheQueryRaw) {
  HttpRequest r;
  r.target = "/api/embedding%2Fgenerate?format=json&x=%41+b";
  ASSERT_TRUE(r.split_target());
  EXPECT_EQ(r.path, "/api/embedding/generate");
  EXPECT_EQ(r.query, "format=json&x=%41+b");
  EXPECT_EQ(r.query_param("format"), "json");
  EXPECT_EQ(r.query_param("x"), "A b");
  EXPECT_EQ(r.query_param("missing"), std::nullopt);
}

TEST(HttpRequest, SplitTargetRefusesWhatIsNotAnOriginFormPath) {
  for (const char* bad : {"", "*", "http://example.com/", "/a%2", "/a%zz", "/a%00b"}) {
    HttpRequest r;
    r.target = bad;
    EXPECT_FALSE(r.split_target()) << bad;
  }
}

TEST(HttpRequest, HeaderIsEmptyWhenAbsent) {
  HttpRequest r;
  r.headers.add("Accept", "application/json");
  EXPECT_EQ(r.header("accept"), "application/json");
  EXPECT_EQ(r.header("Authorization"), "");
  EXPECT_TRUE(r.has_header("ACCEPT"));
  EXPECT_FALSE(r.has_header("Authorization"));
}

TEST(HttpResponse, SetContentAndHeaders) {
  HttpResponse res;
  EXPECT_EQ(res.status, 200);
  res.set_content("{}", "application/json");
  res.set_header("Cache-Control", "no-cache");
  res.set_header("cache-control", "no-store");
  EXPECT_EQ(res.body, "{}");
  EXPECT_EQ(res.content_type, "application/json");
  EXPECT_EQ(res.headers.count("Cache-Control"), 1u);
  EXPECT_EQ(*res.headers.find("Cache-Control"), "no-store");
}

}  // namespace
}  // namespace pagekeeper::server
