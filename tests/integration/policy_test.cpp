// Network policy with real traffic.
