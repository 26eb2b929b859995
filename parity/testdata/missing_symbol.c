/* A library with the right ABI version but none of the entry points. */
#include "greta_parity.h"

int gp_abi_version(void) { return GP_ABI_VERSION; }
