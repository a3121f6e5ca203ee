"""Device actors (one per plugged device) and the device manager that starts and stops them."""
