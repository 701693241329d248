/* Built for the target by cross/smoke.sh and run under qemu-user: asks the
 * emulator for the calls a container start needs (the shim's subreaper, and
 * libcontainer's clone of its intermediate and init processes with
 * CLONE_PARENT and new namespaces). Prints one line per call; exits 1 if
 * any is refused. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int refused;

static void report(const char *call, int err) {
  printf("  %-36s %s\n", call, err ? strerror(err) : "ok");
  if (err) refused = 1;
}

static void try_clone(const char *call, unsigned long flags) {
  long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) _exit(0);
  if (pid > 0) waitpid(pid, 0, flags & CLONE_PARENT ? __WALL : 0);
  report(call, pid < 0 ? errno : 0);
}

int main(void) {
  report("prctl(PR_SET_CHILD_SUBREAPER)", prctl(PR_SET_CHILD_SUBREAPER, 1) ? errno : 0);
  try_clone("clone(SIGCHLD)", 0);
  try_clone("clone(CLONE_PARENT)", CLONE_PARENT);
  try_clone("clone(CLONE_NEWNS)", CLONE_NEWNS);
  try_clone("clone(CLONE_NEWPID)", CLONE_NEWPID);
  return refused;
}
