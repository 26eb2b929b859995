/* A library with the right ABI version but none of the entry points. */
int gp_abi_version(void) { return 1; }
