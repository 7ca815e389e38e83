# A Nomad job running supervisord as the container's entrypoint (docker driver). The
# checks are script checks: Nomad runs supctl inside the task, which asks supervisord.
#
#   nomad job run config/container/supervisord.nomad.hcl
#   nomad alloc exec -task app <alloc> supctl status
job "supervisord-demo" {
  type = "service"

  group "app" {
    network {
      port "http" {
        to = 8080
      }
    }

    task "app" {
      driver = "docker"

      config {
        image = "supervisord-demo:latest"
        ports = ["http"]
      }

      # More than the longest stop_timeout in the job file (10s): Nomad sends the
      # kill_signal, supervisord stops every job in order, then exits 0.
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      resources {
        cpu    = 500
        memory = 256
      }

      service {
        name     = "supervisord-demo"
        port     = "http"
        provider = "nomad"

        check {
          name     = "jobs ready"
          type     = "script"
          command  = "supctl"
          args     = ["wait", "--ready", "--timeout", "4s", "web", "worker"]
          interval = "10s"
          timeout  = "5s"
        }

        check {
          name     = "web alive"
          type     = "script"
          command  = "supctl"
          args     = ["is-alive", "web"]
          interval = "15s"
          timeout  = "5s"

          check_restart {
            limit = 4
            grace = "10s"
          }
        }
      }
    }
  }
}
