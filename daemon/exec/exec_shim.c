/* mesad-exec-shim: the first process of a command's sandbox (pid 2, under bwrap's pid 1).
 *
 *   mesad-exec-shim STATUS_FD NPROC PROGRAM ARGV0 [ARGS...]   (cold: the command is known)
 *   mesad-exec-shim STATUS_FD NPROC --warm GO_FD              (warm: the command comes later)
 *
 * Runs PROGRAM as its child and writes how that child ended to STATUS_FD, exactly, before
 * exiting: "exit N\n", "signal N\n", "exec-error ERRNO\n" or (warm) "chdir-error ERRNO\n".
 * bwrap alone only reports 128+N for a signal, which `exit 137` also gives; mesad needs to
 * tell them apart.
 *
 * NPROC > 0 sets RLIMIT_NPROC (soft and hard) first. Inside the sandbox's own user namespace
 * the kernel (5.14 and later) counts that limit over the namespace's processes only, so it
 * caps the sandbox's processes and threads, whatever else the user runs.
 *
 * Warm: a sandbox mesad set up before the request came (exec_warm_idle_ms). With its limits
 * set, the shim names itself "mesa-warm" and blocks on GO_FD, a socket from mesad, for one
 * message: one byte, with SCM_RIGHTS, a memfd holding "CWD\0COMMAND\0ENV1\0ENV2\0..." and, when
 * the command has stdin, the read end of its stdin pipe. It then chdirs (as the command's
 * user, inside the sandbox) and runs `/bin/bash -c COMMAND` with exactly that environment.
 * End of file instead of a message (mesad dropped the sandbox): it exits, reporting nothing.
 * The command and environment never appear on a command line.
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
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void Ignore(int sig) { (void)sig; }

static void Report(int fd, const char* what, int n) {
  char line[64];
  int len = snprintf(line, sizeof line, "%s %d\n", what, n);
  if (len > 0) (void)!write(fd, line, (size_t)len);
}

/* Closes every descriptor from 3 up but `a` and `b` (b may be -1). */
static void CloseOthers(int a, int b) {
  int lo = a, hi = b;
  if (hi >= 0 && hi < lo) {
    lo = b;
    hi = a;
  }
  if (hi < 0) {
    if (lo > 3) syscall(SYS_close_range, 3u, (unsigned)lo - 1, 0u);
    syscall(SYS_close_range, (unsigned)lo + 1, ~0u, 0u);
    return;
  }
  if (lo > 3) syscall(SYS_close_range, 3u, (unsigned)lo - 1, 0u);
  if (hi > lo + 1) syscall(SYS_close_range, (unsigned)lo + 1, (unsigned)hi - 1, 0u);
  syscall(SYS_close_range, (unsigned)hi + 1, ~0u, 0u);
}

/* The command, from mesad, in warm mode. */
struct Go {
  char* buf;    /* the memfd's bytes, NUL-terminated pieces */
  char* cwd;
  char* argv[4];
  char** envp;
  int stdin_fd; /* -1: keep /dev/null */
};

/* 1: got it; 0: mesad closed the socket; -1: error (errno). */
static int ReceiveGo(int go_fd, struct Go* go) {
  char byte;
  struct iovec iov = {&byte, 1};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(2 * sizeof(int))];
  } control;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  memset(&control, 0, sizeof control);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  ssize_t n;
  do {
    n = recvmsg(go_fd, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n == 0) return 0;
  if (n < 0) return -1;
  int fds[2] = {-1, -1};
  int nfds = 0;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < count; ++i) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (nfds < 2) {
        fds[nfds++] = fd;
      } else {
        close(fd);
      }
    }
  }
  if (nfds < 1 || (msg.msg_flags & MSG_CTRUNC)) {
    errno = EPROTO;
    return -1;
  }
  go->stdin_fd = fds[1];
  struct stat st;
  if (fstat(fds[0], &st) != 0) return -1;
  size_t size = (size_t)st.st_size;
  go->buf = malloc(size + 1);
  if (!go->buf) return -1;
  size_t done = 0;
  while (done < size) {
    ssize_t r = pread(fds[0], go->buf + done, size - done, (off_t)done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      errno = r < 0 ? errno : EPROTO;
      return -1;
    }
    done += (size_t)r;
  }
  close(fds[0]);
  go->buf[size] = '\0';
  /* Count the pieces: cwd, command, then the environment. */
  size_t pieces = 0;
  for (size_t i = 0; i < size; ++i) pieces += go->buf[i] == '\0';
  if (size == 0 || go->buf[size - 1] != '\0' || pieces < 2) {
    errno = EPROTO;
    return -1;
  }
  go->envp = calloc(pieces - 1, sizeof(char*));
  if (!go->envp) return -1;
  char* p = go->buf;
  go->cwd = p;
  p += strlen(p) + 1;
  go->argv[0] = "bash";
  go->argv[1] = "-c";
  go->argv[2] = p;
  go->argv[3] = NULL;
  p += strlen(p) + 1;
  size_t e = 0;
  while (p < go->buf + size) {
    go->envp[e++] = p;
    p += strlen(p) + 1;
  }
  go->envp[e] = NULL;
  return 1;
}

int main(int argc, char** argv) {
  if (argc < 5) {
    static const char usage[] =
        "usage: mesad-exec-shim STATUS_FD NPROC PROGRAM ARGV0 [ARGS...]\n"
        "       mesad-exec-shim STATUS_FD NPROC --warm GO_FD\n";
    (void)!write(2, usage, sizeof usage - 1);
    return 127;
  }
  int status_fd = atoi(argv[1]);
  if (status_fd < 3) return 127;
  int warm = strcmp(argv[3], "--warm") == 0;
  int go_fd = warm ? atoi(argv[4]) : -1;
  if (warm && (go_fd < 3 || go_fd == status_fd)) return 127;
  /* Everything but stdio, the status pipe and the go socket (including the fd this binary was
   * run from). */
  CloseOthers(status_fd, go_fd);
  /* The child must not inherit the status pipe (nor the go socket). */
  if (fcntl(status_fd, F_SETFD, FD_CLOEXEC) != 0) return 127;
  if (warm && fcntl(go_fd, F_SETFD, FD_CLOEXEC) != 0) return 127;

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

  const char* program = argv[3];
  char** program_argv = argv + 4;
  char** envp = NULL;
  struct Go go;
  memset(&go, 0, sizeof go);
  go.stdin_fd = -1;
  if (warm) {
    prctl(PR_SET_NAME, "mesa-warm", 0, 0, 0);
    int got = ReceiveGo(go_fd, &go);
    if (got == 0) return 0;
    if (got < 0) {
      Report(status_fd, "exec-error", errno);
      return 127;
    }
    close(go_fd);
    prctl(PR_SET_NAME, "mesa-shim", 0, 0, 0);
    if (chdir(go.cwd) != 0) {
      Report(status_fd, "chdir-error", errno);
      return 127;
    }
    program = "/bin/bash";
    program_argv = go.argv;
    envp = go.envp;
  }

  pid_t pid = fork();
  if (pid < 0) {
    Report(status_fd, "exec-error", errno);
    return 127;
  }
  if (pid == 0) {
    if (go.stdin_fd >= 0 && dup2(go.stdin_fd, 0) < 0) {
      Report(status_fd, "exec-error", errno);
      _exit(127);
    }
    if (envp) {
      execve(program, program_argv, envp);
    } else {
      execv(program, program_argv);
    }
    Report(status_fd, "exec-error", errno);
    _exit(127);
  }
  if (go.stdin_fd >= 0) close(go.stdin_fd);
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
