#include "client/cli/output.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace mesa::cli {

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  for (auto& c : cells) {
    // One row per line, whatever the data holds.
    std::replace(c.begin(), c.end(), '\n', ' ');
    std::replace(c.begin(), c.end(), '\t', ' ');
  }
  rows_.push_back(std::move(cells));
}

void Table::Print(std::ostream& out) const {
  std::vector<size_t> width(headers_.size());
  for (size_t i = 0; i < headers_.size(); ++i) width[i] = headers_[i].size();
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t i = 0; i < cells.size(); ++i) {
      s += cells[i];
      if (i + 1 < cells.size()) s += std::string(width[i] - cells[i].size() + 2, ' ');
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    out << s << "\n";
  };
  line(headers_);
  for (const auto& row : rows_) line(row);
}

Fields& Fields::Add(const std::string& key, const std::string& value) {
  lines_.emplace_back(key, value);
  return *this;
}

Fields& Fields::AddIf(const std::string& key, const std::string& value) {
  if (!value.empty()) lines_.emplace_back(key, value);
  return *this;
}

void Fields::Print(std::ostream& out) const {
  for (const auto& [k, v] : lines_) out << k << ":" << (v.empty() ? "" : " ") << v << "\n";
}

nlohmann::json MessageJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string text;
  auto status = google::protobuf::util::MessageToJsonString(message, &text, options);
  if (!status.ok())
    throw std::runtime_error("cannot render " + message.GetTypeName() + " as JSON: " + status.ToString());
  return nlohmann::json::parse(text);
}

void PrintJson(const nlohmann::json& value) {
  std::cout << value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

void PrintMessageJson(const google::protobuf::Message& message) { PrintJson(MessageJson(message)); }

void WriteRaw(const std::string& bytes) {
  std::cout.flush();
  if (!bytes.empty() && fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size())
    throw std::runtime_error("cannot write to stdout");
  fflush(stdout);
}

std::string Join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

std::string YesNo(bool value) { return value ? "yes" : "no"; }

std::string OrDash(const std::string& value) { return value.empty() ? "-" : value; }

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace mesa::cli
