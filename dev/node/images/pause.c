/* The sandbox ("pause") process of every pod on the test node: holds the pod's namespaces, reaps
 * orphans, exits 0 on SIGTERM/SIGINT. Written for this project; static, no libc at run time.
 *   gcc -Os -static -o pause pause.c */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) { (void)sig; _exit(0); }
static void on_child(int sig) {
  (void)sig;
  while (waitpid(-1, 0, WNOHANG) > 0) {}
}

int main(void) {
  struct sigaction sa = {0};
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_stop;
  if (sigaction(SIGINT, &sa, 0) || sigaction(SIGTERM, &sa, 0)) return 1;
  sa.sa_handler = on_child;
  sa.sa_flags = SA_NOCLDSTOP;
  if (sigaction(SIGCHLD, &sa, 0)) return 2;
  for (;;) pause();
}
