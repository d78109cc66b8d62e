/* mesad-exec-shim: the first process of a command's sandbox (pid 2, under bwrap's pid 1).
 *
 *   mesad-exec-shim STATUS_FD NPROC PROGRAM ARGV0 [ARGS...]
 *
 * Runs PROGRAM as its child and writes how that child ended to STATUS_FD, exactly, before
 * exiting: "exit N\n", "signal N\n", or "exec-error ERRNO\n". bwrap alone only reports
 * 128+N for a signal, which `exit 137` also gives; mesad needs to tell them apart.
 *
 * NPROC > 0 sets RLIMIT_NPROC (soft and hard) first. Inside the sandbox's own user namespace
 * the kernel (5.14 and later) counts that limit over the namespace's processes only, so it
 * caps the sandbox's processes and threads, whatever else the user runs.
 *
 * mesad starts it through /proc/self/fd/N (it is not part of the sandbox's filesystem), so it
 * first closes every other inherited descriptor. SIGTERM, SIGINT and SIGHUP are caught (not
 * ignored, so PROGRAM starts with default dispositions) so that a graceful stop of the whole
 * sandbox still lets the shim report how PROGRAM ended. Plain C and static: it runs once per
 * command and must start fast. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void Ignore(int sig) { (void)sig; }

static void Report(int fd, const char* what, int n) {
  char line[64];
  int len = snprintf(line, sizeof line, "%s %d\n", what, n);
  if (len > 0) (void)!write(fd, line, (size_t)len);
}

int main(int argc, char** argv) {
  if (argc < 5) {
    static const char usage[] = "usage: mesad-exec-shim STATUS_FD NPROC PROGRAM ARGV0 [ARGS...]\n";
    (void)!write(2, usage, sizeof usage - 1);
    return 127;
  }
  int status_fd = atoi(argv[1]);
  if (status_fd < 3) return 127;
  /* Everything but stdio and the status pipe (including the fd this binary was run from). */
  if (status_fd > 3) syscall(SYS_close_range, 3u, (unsigned)status_fd - 1, 0u);
  syscall(SYS_close_range, (unsigned)status_fd + 1, ~0u, 0u);
  /* The child must not inherit the status pipe. */
  if (fcntl(status_fd, F_SETFD, FD_CLOEXEC) != 0) return 127;

  long nproc = atol(argv[2]);
  if (nproc > 0) {
    struct rlimit lim = {(rlim_t)nproc, (rlim_t)nproc};
    if (setrlimit(RLIMIT_NPROC, &lim) != 0) {
      Report(status_fd, "exec-error", errno);
      return 127;
    }
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = Ignore;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);

  pid_t pid = fork();
  if (pid < 0) {
    Report(status_fd, "exec-error", errno);
    return 127;
  }
  if (pid == 0) {
    execv(argv[3], argv + 4);
    Report(status_fd, "exec-error", errno);
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      Report(status_fd, "exec-error", errno);
      return 127;
    }
  }
  if (WIFSIGNALED(status)) {
    Report(status_fd, "signal", WTERMSIG(status));
    return 128 + WTERMSIG(status);
  }
  Report(status_fd, "exit", WEXITSTATUS(status));
  return WEXITSTATUS(status);
}
