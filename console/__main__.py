from dasan.cli import package_main

package_main("console")
