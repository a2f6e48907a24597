{ ... }:

{
  users.users.root = {
    openssh.authorizedKeys.keyFiles = [ ../keys/operator.pub ];
  };
}
