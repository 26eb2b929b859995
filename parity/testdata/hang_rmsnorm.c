/* A kernel that never returns on the decode shape: the CPU backend's
 * gp_rmsnorm, renamed gp_rmsnorm_real at build time, wrapped so that a
 * one-row call spins forever. TestWatchdog needs the harness to fail the
 * stage by name instead of hanging. */
#include <unistd.h>

int gp_rmsnorm_real(int dtype, const void *x, const void *w, void *y, int rows, int dim, float eps);

int gp_rmsnorm(int dtype, const void *x, const void *w, void *y, int rows, int dim, float eps) {
    if (rows == 1) {
        for (;;) {
            sleep(1);
        }
    }
    return gp_rmsnorm_real(dtype, x, w, y, rows, dim, eps);
}
