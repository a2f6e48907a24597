# Key contents must never appear in ferry's output. The marker below is the "secret".
let
  fromLet = "FERRY-POISON-3b8e1c-let";
in
{
  web = {
    deployment.targetHost = "10.1.0.1";
    deployment.keys.literal.text = "FERRY-POISON-3b8e1c-literal";
    deployment.keys.viaLet.text = fromLet;
    deployment.keys.interpolated.text = "prefix-${fromLet}";
    deployment.keys.bad = { text = "FERRY-POISON-3b8e1c-bad"; uploadAt = "sometime"; };
    services.app.adminPassword = "FERRY-POISON-3b8e1c-option";
  };
}
