/* A library that speaks another ABI version: the binding must refuse it
 * before binding anything else. */
int gp_abi_version(void) { return 999; }
