// Output of `mesa`: aligned tables and "key: value" lines for people, JSON for scripts.
// JSON is protobuf's canonical mapping (google::protobuf::util::MessageToJsonString) with the
// proto field names, which are the Mesa REST names; one JSON document per command, lists as
// {"items": [...], "next_cursor": "..." | null}.
#pragma once

#include <google/protobuf/message.h>

#include <algorithm>
#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"

namespace mesa::cli {

// Columns separated by two spaces, padded to the widest cell; the last column is not padded.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void AddRow(std::vector<std::string> cells);
  void Print(std::ostream& out) const;
  size_t rows() const { return rows_.size(); }

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// "key: value" lines, in order.
class Fields {
 public:
  Fields& Add(const std::string& key, const std::string& value);
  // Only when `value` is not empty.
  Fields& AddIf(const std::string& key, const std::string& value);
  void Print(std::ostream& out) const;

 private:
  std::vector<std::pair<std::string, std::string>> lines_;
};

// The message as a JSON value (proto field names, default-valued scalars included).
nlohmann::json MessageJson(const google::protobuf::Message& message);

// Writes one JSON document (pretty, newline-terminated) to stdout.
void PrintJson(const nlohmann::json& value);
void PrintMessageJson(const google::protobuf::Message& message);

// {"items": [...], "next_cursor": ...} for a list of messages.
template <typename Items>
void PrintListJson(const Items& items, const std::optional<std::string>& next_cursor) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& item : items) list.push_back(MessageJson(item));
  PrintJson({{"items", std::move(list)},
             {"next_cursor", next_cursor ? nlohmann::json(*next_cursor) : nlohmann::json(nullptr)}});
}

// Writes bytes to stdout exactly as they are.
void WriteRaw(const std::string& bytes);

// Small formatting helpers for table cells and fields.
std::string Join(const std::vector<std::string>& items, const std::string& sep);
template <typename Repeated>
std::string JoinAll(const Repeated& items, const std::string& sep = ",") {
  return Join(std::vector<std::string>(items.begin(), items.end()), sep);
}
template <typename Map>
std::string FormatTags(const Map& tags) {
  std::vector<std::pair<std::string, std::string>> sorted(tags.begin(), tags.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::string> parts;
  for (const auto& [k, v] : sorted) parts.push_back(k + "=" + v);
  return Join(parts, ",");
}
std::string YesNo(bool value);
std::string OrDash(const std::string& value);
// The first line of a message, for table cells.
std::string FirstLine(const std::string& text);

}  // namespace mesa::cli
