[
  ''
    line one
      indented
    last
  ''
  ''  no newline after open''
  ''
    ''${escaped} and '''quotes''' and ''\n newline ''\t tab
    $notinterp ${"interp"}
  ''
  ''
      a
    ${"b"}
      c
  ''
  ''

    leading blank line
  ''
  ''
    trailing spaces   
    end''
  '' ''$ '''''
  ''
  	tab-indented
  ''
]
