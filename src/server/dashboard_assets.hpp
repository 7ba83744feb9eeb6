// The dashboard's files (web/), compiled into the binary by src/server/embed_assets.cmake,
// which generates dashboard_assets.cpp at build time from every file under web/.
//
// Thread safety: immutable static data.

#pragma once

#include <span>
#include <string_view>

namespace pagekeeper::server {

struct DashboardAsset {
  std::string_view path;          // URL path, e.g. "/index.html"
  std::string_view content_type;  // from the file extension
  std::string_view body;
};

// Every embedded file.
std::span<const DashboardAsset> dashboard_assets();

// The asset served at `path` ("/" is "/index.html"); nullptr when there is none.
const DashboardAsset* find_dashboard_asset(std::string_view path);

}  // namespace pagekeeper::server
