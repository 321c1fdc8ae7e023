{
  "targets": [
    {
      "target_name": "bowline_native",
      "sources": ["socket-helper.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
