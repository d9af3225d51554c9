// Network policy on crafted frames through BPF_PROG_TEST_RUN.
