#include "server/store/git.h"

#include <cstring>
#include <mutex>

#include "rest/api_error.h"
#include "rest/change_id.h"

namespace mesa::server::git {
namespace {

std::string SanitizeIdent(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '<' || c == '>' || c == '\n' || c == '\r' || c == '\0') continue;
    out.push_back(c);
  }
  // git trims surrounding spaces when parsing; keep the written form canonical.
  while (!out.empty() && out.back() == ' ') out.pop_back();
  size_t lead = out.find_first_not_of(' ');
  return lead == std::string::npos ? std::string() : out.substr(lead);
}

std::string FormatSignature(const Signature& sig) {
  int off = sig.offset_minutes;
  char sign = off < 0 ? '-' : '+';
  if (off < 0) off = -off;
  char tz[8];
  snprintf(tz, sizeof tz, "%c%02d%02d", sign, off / 60 % 100, off % 60);
  return SanitizeIdent(sig.name) + " <" + SanitizeIdent(sig.email) + "> " +
         std::to_string(sig.time_s) + " " + tz;
}

Signature FromGit(const git_signature* s) {
  Signature out;
  if (!s) return out;
  out.name = s->name ? s->name : "";
  out.email = s->email ? s->email : "";
  out.time_s = s->when.time;
  out.offset_minutes = s->when.offset;
  return out;
}

}  // namespace

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] {
    git_libgit2_init();
    // Objects are verified when created; hashes of what we read are checked too.
    git_libgit2_opts(GIT_OPT_ENABLE_STRICT_OBJECT_CREATION, 1);
    git_libgit2_opts(GIT_OPT_ENABLE_STRICT_HASH_VERIFICATION, 0);
  });
}

absl::Status Error(int rc, std::string_view what) {
  const git_error* e = git_error_last();
  std::string msg = std::string("git ") + std::string(what) + " failed (" + std::to_string(rc) + ")";
  if (e && e->message) msg += ": " + std::string(e->message);
  return rest::InternalError(msg);
}

std::string OidHex(const git_oid& oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof buf, &oid);
  return buf;
}

bool ParseOid(std::string_view hex, git_oid* out) {
  if (hex.size() != GIT_OID_HEXSZ) return false;
  return git_oid_fromstrn(out, hex.data(), hex.size()) == 0;
}

absl::StatusOr<RepositoryPtr> InitBare(const std::string& path) {
  git_repository* repo = nullptr;
  int rc = git_repository_init(&repo, path.c_str(), /*is_bare=*/1);
  if (rc < 0) return Error(rc, "init " + path);
  return RepositoryPtr(repo);
}

absl::StatusOr<RepositoryPtr> OpenBare(const std::string& path) {
  git_repository* repo = nullptr;
  int rc = git_repository_open_bare(&repo, path.c_str());
  if (rc < 0) return Error(rc, "open " + path);
  return RepositoryPtr(repo);
}

absl::StatusOr<CommitInfo> ReadCommit(git_repository* repo, std::string_view oid_hex) {
  git_oid oid;
  if (!ParseOid(oid_hex, &oid)) return rest::InternalError("bad commit oid " + std::string(oid_hex));
  git_commit* raw = nullptr;
  int rc = git_commit_lookup(&raw, repo, &oid);
  if (rc < 0) return Error(rc, "commit lookup " + std::string(oid_hex));
  CommitPtr commit(raw);
  CommitInfo info;
  info.oid = std::string(oid_hex);
  info.tree_oid = OidHex(*git_commit_tree_id(raw));
  for (unsigned i = 0; i < git_commit_parentcount(raw); ++i) {
    info.parent_oids.push_back(OidHex(*git_commit_parent_id(raw, i)));
  }
  Buf header;
  if (git_commit_header_field(&header.buf, raw, "change-id") == 0 &&
      rest::DecodeChangeId(header.str())) {
    info.change_id = header.str();
    for (char& c : info.change_id) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  } else {
    info.change_id = rest::SyntheticChangeIdFromCommit(info.oid);
  }
  const char* msg = git_commit_message_raw(raw);
  info.message = msg ? msg : "";
  if (!info.message.empty() && info.message.back() == '\n') info.message.pop_back();
  info.author = FromGit(git_commit_author(raw));
  info.committer = FromGit(git_commit_committer(raw));
  return info;
}

absl::StatusOr<std::string> EmptyTreeOid(git_repository* repo) {
  git_treebuilder* builder = nullptr;
  int rc = git_treebuilder_new(&builder, repo, nullptr);
  if (rc < 0) return Error(rc, "treebuilder");
  git_oid oid;
  rc = git_treebuilder_write(&oid, builder);
  git_treebuilder_free(builder);
  if (rc < 0) return Error(rc, "write empty tree");
  return OidHex(oid);
}

absl::StatusOr<std::string> WriteCommit(git_repository* repo, std::string_view tree_oid,
                                        const std::vector<std::string>& parent_oids,
                                        const Signature& author, const Signature& committer,
                                        std::string_view change_id, std::string_view message) {
  std::string tree(tree_oid);
  if (tree.empty()) {
    auto empty = EmptyTreeOid(repo);
    if (!empty.ok()) return empty.status();
    tree = *empty;
  }
  std::string buf;
  buf.reserve(256 + message.size());
  buf += "tree " + tree + "\n";
  for (const auto& p : parent_oids) buf += "parent " + p + "\n";
  buf += "author " + FormatSignature(author) + "\n";
  buf += "committer " + FormatSignature(committer) + "\n";
  buf += "change-id " + std::string(change_id) + "\n";
  buf += "\n";
  buf += message;
  if (!message.empty()) buf += "\n";

  git_odb* odb_raw = nullptr;
  int rc = git_repository_odb(&odb_raw, repo);
  if (rc < 0) return Error(rc, "odb");
  OdbPtr odb(odb_raw);
  git_oid oid;
  rc = git_odb_write(&oid, odb.get(), buf.data(), buf.size(), GIT_OBJECT_COMMIT);
  if (rc < 0) return Error(rc, "write commit");
  return OidHex(oid);
}

absl::StatusOr<TreePtr> LookupTree(git_repository* repo, std::string_view tree_oid) {
  git_oid oid;
  if (!ParseOid(tree_oid, &oid)) return rest::InternalError("bad tree oid");
  git_tree* tree = nullptr;
  int rc = git_tree_lookup(&tree, repo, &oid);
  if (rc < 0) return Error(rc, "tree lookup");
  return TreePtr(tree);
}

}  // namespace mesa::server::git
