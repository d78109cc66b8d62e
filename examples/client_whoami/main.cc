// Prints who mesad says the caller is, through the installed C++ client library.
//   client_whoami [SOCKET]   (default: $MESA_SOCKET, else /run/mesad/mesad.sock)
#include <iostream>

#include "mesa/client.h"

int main(int argc, char** argv) {
  mesa::ClientOptions options;
  if (argc > 1) options.socket = argv[1];
  try {
    mesa::Client client(options);
    auto who = client.sessions().whoami();
    std::cout << "org: " << who.org().slug() << "\n";
    for (const auto& scope : who.scopes()) std::cout << "scope: " << scope << "\n";
    return 0;
  } catch (const mesa::MesaError& e) {
    std::cerr << "client_whoami: " << e.code() << ": " << e.what() << "\n";
    return 1;
  }
}
