//! Supervisor INI → job file.
