#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define MESA_STATUS_CONCAT_INNER(a, b) a##b
#define MESA_STATUS_CONCAT(a, b) MESA_STATUS_CONCAT_INNER(a, b)

// Returns the error of a Status-returning expression.
#define MESA_RETURN_IF_ERROR(expr)                  \
  do {                                              \
    ::absl::Status mesa_status_ = (expr);           \
    if (!mesa_status_.ok()) return mesa_status_;    \
  } while (0)

// `lhs = value` of a StatusOr-returning expression, or returns its error.
#define MESA_ASSIGN_OR_RETURN(lhs, expr) \
  MESA_ASSIGN_OR_RETURN_IMPL(MESA_STATUS_CONCAT(mesa_statusor_, __LINE__), lhs, expr)
#define MESA_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(*tmp)
